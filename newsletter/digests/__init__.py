"""Personal digests: choose each subscriber's papers, render each distinct digest once, send
it through the configured provider (batch calls with per-recipient merge data where the
provider has them), and record every delivery exactly once.

    dispatch   who is due now; creates Delivery rows and queues chunks of them
    chunks     one chunk: claim, choose, render, send, record
    selection  which papers a digest holds (only from a good, recent scrape)
    rendering  paper blocks rendered once, digests assembled from them with merge fields
    links      each recipient's own links and headers
    outbox     the provider calls: batch (merge data) or one message each (SMTP, console)
    providers  per-provider batch limits, merge syntax and error classification
    ratelimit  a token bucket in Redis shared by every worker
    claims     the database side of exactly-once: claims, liveness locks, recording
    alerts     telling the admins about digests refused before sending
"""

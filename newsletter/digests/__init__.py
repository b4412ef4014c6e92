"""Personal digests: choose each subscriber's papers, render each distinct digest once, send
it through the configured provider (batch calls with per-recipient merge data where the
provider has them), and record every delivery exactly once.

    dispatch   who is due now; creates Delivery rows and hands chunks of them to what it is
               given to enqueue them with (newsletter.tasks.digests); the dry run
    chunks     one chunk: claim, choose, render, send, record
    selection  which papers, in which order, for this reader on this date (only from a
               good, recent scrape): sending, dispatch and preview all ask it
    ranking    the order of a reader's papers: the hook DIGEST_RANKING names
    preview    a sent digest in the browser, and anyone's next one for staff
    trial      "Send a test digest to this address"
    rendering  paper blocks rendered once, digests assembled from them with merge fields
    links      each recipient's own links and headers
    outbox     the provider calls: batch (merge data) or one message each (SMTP, console)
    providers  the digest side's door to newsletter/email_providers (what the configured
               backend can do, the kinds of send errors)
    ratelimit  a token bucket in Redis shared by every worker
    claims     the database side of exactly-once: claims, liveness locks, recording
    alerts     telling the admins about digests refused before sending
"""

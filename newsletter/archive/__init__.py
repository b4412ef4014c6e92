"""The public archive and its Atom feeds: what was trending each day (/archive/), each topic's
papers (/topics/<slug>/), and the same as feeds (/feeds/all.atom, /feeds/topics/<slug>.atom),
plus the sample of the latest digest on the sign-up page.

Everything here is public and the same for every visitor: no subscriber, address or token is
read, and scraped fields are made safe in one place (papers.py). Pages are cached whole and
answer conditional requests, keyed on what they show (state.py, caching.py).

    state.py     what every page depends on (newest good scrape, topic assignments, topics)
    queries.py   the reads, a fixed number of queries whatever the number of papers
    papers.py    a paper as the archive shows it: scraped text cleaned, https links only
    caching.py   the page decorator: ETag / Last-Modified, then Django's cache, then the view
    views.py, feeds.py, urls.py, templatetags/archive.py (the sign-up page's sample)
"""

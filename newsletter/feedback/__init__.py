"""Readers' votes from the digest: "More like this" and "Less like this" on every paper.

Each paper of each digest carries one signed token (tokens.py) naming the reader, the
delivery and the paper. Following its link only shows a button; the vote is recorded on the
POST (link scanners fetch every URL in an email and must record nothing). After a vote the
reader lands on the "rate this digest" page: the rest of that digest, each paper with its own
pair of buttons, the votes already given, and undo. A vote tells the reader's model
(newsletter/personal/signals.py) at once.
"""

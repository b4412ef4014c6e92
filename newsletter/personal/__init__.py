"""Per-reader ranking: what each reader's votes, follows, seed papers and own words say about
the papers of a day (features.py: a paper as hashed sparse features; profiles.py: training
one reader's model; ranking.py: the DIGEST_RANKING that blends it with topics and upvotes)."""

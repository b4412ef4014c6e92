"""Training readers' models (newsletter/personal/): being written."""


def retrain_stale(subscriber_ids=None) -> dict:
    return {"trained": 0}

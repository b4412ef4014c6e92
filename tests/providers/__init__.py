"""One test file per email provider, each over the shared contract in contract.py."""

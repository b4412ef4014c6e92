"""Shared test support: the real-parts helpers that tests, chaos and bench all use.

One module per job (fake providers, the fake huggingface.co, the SMTP sink, processes, ports,
databases, seeding). tests/, chaos/ and bench/ import from here and never from each other.
"""

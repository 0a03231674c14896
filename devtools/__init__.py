"""Development tools: the local launcher (`make run`, tests, bench) and the dev mail sink.

Run from the repository root (`python -m devtools.run`); not installed with the services.
"""

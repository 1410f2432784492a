"""The ledger's records as bytes: the layout of accounts, transfers, balances and results (`layout`), their
flags and result codes (`codes`) and every bound (`limits`).

A leaf: it imports only the standard library, so that a client, the generated stubs or a tool can read
and write records without loading (or selecting) an engine, a journal or a server.
"""

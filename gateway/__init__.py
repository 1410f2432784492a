"""HTTP gateway for shops and POS terminals.

It translates HTTP calls into the ledger's RPCs through the client library
and generated stubs only, holds no balances and makes no money decisions.
"""

"""The CDS Hooks 2.0 service (`cledecide serve`): the HTTP app and its checks (server),
the cards it answers with (cards) and the hash-chained audit trail (audit)."""

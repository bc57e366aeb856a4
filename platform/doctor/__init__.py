"""The connection doctor: does what each MCP client generation does against a URL, step by step."""

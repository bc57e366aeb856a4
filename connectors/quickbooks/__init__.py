"""QuickBooks Online connector: Intuit OAuth and Accounting API client, and a local emulator.

Modules:
    query       the Intuit query grammar (parsed into an AST; shared by client and emulator)
    errors      exceptions raised by the client, and the mapping of Intuit Fault shapes to them
    oauth       discovery, authorization URL, code exchange, refresh, revoke (sync and async)
    api         the Accounting API client (async)
    throttle    per-company request throttle (in-process, or shared through the platform)
    client      the public surface of all of the above, in one import
    emulator/   a local Intuit for tests and the embedded server
"""

"""Benchmark: one token-endpoint POST with a new httpx client per call vs one shared client.

What `QuickBooksProvider` did before (a client made and closed per refresh: a new TCP
connection, and with https a new TLS handshake, every time) against what it does now (one
pooled client per process). A small local server answers like a token endpoint, over plain
HTTP and over TLS (a throwaway self-signed certificate, trusted by this run only). Client and
server share this process, so the CPU column is both sides together; on a real network a new
connection also costs its round trips (TCP, then TLS), which loopback hides.

    uv run python bench/http_client_reuse.py --calls 300
"""

import argparse
import datetime
import ipaddress
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from connectors.quickbooks import transport  # noqa: E402


async def token(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"access_token": "a", "refresh_token": "r", "expires_in": 3600})


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def serve(port: int, **ssl_files) -> uvicorn.Server:
    app = Starlette(routes=[Route("/oauth2/v1/tokens/bearer", token, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **ssl_files
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="client-reuse-"))
    key, cert = self_signed(folder)
    trusted = ssl.create_default_context(cafile=str(cert))
    # make_client verifies with transport.shared_ssl_context(); here it trusts the local cert.
    transport.shared_ssl_context.cache_clear()
    transport.httpx.create_ssl_context = lambda: trusted

    plain, tls = free_port(), free_port()
    servers = [serve(plain), serve(tls, ssl_keyfile=str(key), ssl_certfile=str(cert))]
    form = {"grant_type": "refresh_token", "refresh_token": "r"}
    print("| scheme | client | wall ms/call | CPU ms/call (client + server) |")
    print("| --- | --- | ---: | ---: |")
    for scheme, port in (("http", plain), ("https", tls)):
        url = f"{scheme}://127.0.0.1:{port}/oauth2/v1/tokens/bearer"
        shared = transport.make_client()

        def per_call(url=url):
            with transport.make_client() as http:
                http.post(url, data=form, auth=("id", "secret")).raise_for_status()

        def reused(url=url, shared=shared):
            shared.post(url, data=form, auth=("id", "secret")).raise_for_status()

        for label, call in (
            ("new client per call (before)", per_call),
            ("one shared client (now)", reused),
        ):
            for _ in range(20):
                call()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.calls):
                call()
            wall = (time.perf_counter() - wall) * 1000 / args.calls
            cpu = (time.process_time() - cpu) * 1000 / args.calls
            print(f"| {scheme} | {label} | {wall:.2f} | {cpu:.2f} |", flush=True)
        shared.close()
    for server in servers:
        server.should_exit = True


if __name__ == "__main__":
    main()

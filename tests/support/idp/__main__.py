"""``python -m tests.support.idp PORT DIR``: run the test identity provider on 127.0.0.1:PORT."""

import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def main() -> None:
    port, state_dir = int(sys.argv[1]), Path(sys.argv[2])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (state_dir / "rsa.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.environ["IDP_DIR"] = str(state_dir)
    os.environ["IDP_ISSUER"] = f"http://127.0.0.1:{port}/o"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.idp.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    import uvicorn
    from django.core.asgi import get_asgi_application

    uvicorn.run(
        get_asgi_application(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )


if __name__ == "__main__":
    main()

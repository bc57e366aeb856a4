"""``manage.py upstream_reencrypt``: re-encrypt upstream tokens under the newest key."""

from django.core.management.base import BaseCommand

from upstream.services import upstream_keys_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every upstream token under the first key of UPSTREAM_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        count = upstream_keys_reencrypt()
        self.stdout.write(f"re-encrypted {count} upstream connection(s)")

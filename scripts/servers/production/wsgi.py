"""WSGI entry points for Keystone and Barbican under gunicorn.

Test-environment helper for scripts/servers/production/openstack.sh (the
production-shaped set). gunicorn loads them as application factories:

    gunicorn 'wsgi:keystone()'   reads OS_KEYSTONE_CONFIG_DIR/keystone.conf
    gunicorn 'wsgi:barbican()'   reads $HOME/.barbican/barbican.conf and the
                                 paste file named by KEYMGR_BARBICAN_PASTE

`python wsgi.py barbican-schema` loads Barbican once outside gunicorn so its
`db_auto_create` makes the tables in PostgreSQL before several workers start
(four workers creating the schema at once would race).
"""

import os
import sys


def keystone():
    """Keystone's public application."""
    # oslo.config parses sys.argv: leave it nothing of gunicorn's to reject.
    sys.argv = sys.argv[:1]
    from keystone.server import wsgi

    return wsgi.initialize_public_application()


def _bytes_as_text():
    """Sends ASCII `bytes` parameters to PostgreSQL as text.

    Barbican 23 writes `base64.b64encode(...)` (bytes) into its `Text`
    column `encrypted_data.cypher_text`; psycopg2 sends bytes as `bytea`,
    which PostgreSQL casts to the text `\\x5a30...`, and every later read
    of the payload fails with a 500 (binascii.Error). MySQL drivers send
    such bytes as a string. Barbican has no binary column (its models avoid
    BYTEA), so ASCII bytes go as text; anything else stays binary.
    """
    from psycopg2 import extensions

    def adapt(value):
        try:
            return extensions.QuotedString(value.decode("ascii"))
        except UnicodeDecodeError:
            return extensions.Binary(value)

    extensions.register_adapter(bytes, adapt)


def barbican():
    """Barbican's API pipeline from the paste file (Keystone auth)."""
    sys.argv = sys.argv[:1]
    _bytes_as_text()
    import barbican.common.config  # noqa: F401  (registers options, reads barbican.conf)
    from paste import deploy

    return deploy.loadapp("config:" + os.path.abspath(os.environ["KEYMGR_BARBICAN_PASTE"]))


if __name__ == "__main__":
    if sys.argv[1:] != ["barbican-schema"]:
        sys.stderr.write(__doc__)
        sys.exit(2)
    barbican()

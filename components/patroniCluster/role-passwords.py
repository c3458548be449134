"""Give PostgreSQL's system roles (superuser, replication, rewind) the passwords of the new Patroni config,
on the read-write leader, before that config reaches any member.

Patroni sets these passwords only when it bootstraps a cluster; later it merely uses whatever its config
says. A changed password in the config alone would lock Patroni, the replicas and pg_rewind out of the
database at their next login. So on a rotation the leader's roles change first, then the config follows.

stdin (JSON, never argv): {"superuser": name, "roles": [{"name": ..., "password": ...}, ...]}
argv: the Patroni config (read for the password the cluster has now), the socket directory, the port.

The superuser logs in over the local socket with the deployed password, else with the new one (a run
that changed the roles and stopped before the config followed). A role whose stored SCRAM secret already
matches its password is left alone, so a deploy without a rotation changes nothing. New secrets are
computed here with a random salt and sent as secrets, never as a password PostgreSQL would see in text.
"""
import base64
import hashlib
import hmac
import json
import os
import sys

import psycopg2
import yaml
from psycopg2 import sql

ITERATIONS = 4096


def scram_keys(password: str, salt: bytes, iterations: int):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_secret(password: str) -> str:
    salt = os.urandom(16)
    stored, server = scram_keys(password, salt, ITERATIONS)
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server)}"


def matches(stored_secret, password: str) -> bool:
    """True when PostgreSQL's stored SCRAM secret is one of this password (any salt)."""
    try:
        method, rest = stored_secret.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored, server = keys.split(":", 1)
        if method != "SCRAM-SHA-256":
            return False
        want_stored, want_server = scram_keys(password, base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(want_stored, base64.b64decode(stored)) and hmac.compare_digest(want_server, base64.b64decode(server))
    except (AttributeError, ValueError):
        return False  # no password, md5, or a form we do not know: set it


def deployed_password(config_path: str):
    try:
        with open(config_path) as f:
            return yaml.safe_load(f)["postgresql"]["authentication"]["superuser"]["password"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def connect(superuser: str, candidates, socket_dir: str, port: int):
    errors = []
    for password in candidates:
        try:
            return psycopg2.connect(host=socket_dir, port=port, dbname="postgres", user=superuser, password=password, connect_timeout=10)
        except psycopg2.OperationalError as e:
            # libpq's message names the user and the reason, never the password
            errors.append(str(e).strip().splitlines()[0])
    print(f"cannot log in as {superuser} with the deployed or the new password: {'; '.join(errors)}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    config_path, socket_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    want = json.load(sys.stdin)
    superuser = want["superuser"]
    new_su = next(r["password"] for r in want["roles"] if r["name"] == superuser)
    candidates = [p for p in dict.fromkeys([deployed_password(config_path), new_su]) if p is not None]
    conn = connect(superuser, candidates, socket_dir, port)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_is_in_recovery()")
    if cur.fetchone()[0]:
        print("in recovery (not the read-write leader): nothing to do")
        return
    # the statement carries a secret: keep it out of the server log whatever log_statement says
    cur.execute("SET log_statement = 'none'")
    changed = []
    for role in want["roles"]:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role["name"],))
        row = cur.fetchone()
        if row is None:
            print(f"role {role['name']} does not exist on the leader", file=sys.stderr)
            sys.exit(1)
        if matches(row[0], role["password"]):
            continue
        # a non-ASCII password goes as text: the server's SASLprep then matches what clients send
        value = scram_secret(role["password"]) if role["password"].isascii() else role["password"]
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role["name"])), (value,))
        changed.append(role["name"])
    print("passwords changed: " + (" ".join(changed) if changed else "none"))


if __name__ == "__main__":
    main()

"""Create the test tenants in a freshly bootstrapped Keystone.

Test-environment helper for scripts/servers/openstack.sh. Usage:

    python provision.py KEYSTONE_URL BARBICAN_URL ENV_FILE   (admin password on stdin)

Through Keystone's v3 REST API with the bootstrap admin's token it creates:
projects km-a and km-b with a member user each (alice, bob), a `service`
project with a service user (role `service`, which Barbican's authtoken
middleware uses to validate tokens), and the `key-manager` service with
public, internal and admin endpoints in RegionOne. It appends `export`
lines naming all of that to ENV_FILE (mode 0600); passwords are random.
"""

import json
import secrets
import sys
import urllib.error
import urllib.request


def call(base, method, path, token=None, body=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            if resp.status not in expect:
                raise SystemExit("%s %s: status %d" % (method, path, resp.status))
            return resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raise SystemExit("%s %s: HTTP %d: %s" % (method, path, e.code, e.read()[:500]))


def main():
    keystone, barbican, env_file = sys.argv[1:4]
    admin_password = sys.stdin.readline().strip()
    v3 = keystone.rstrip("/") + "/v3"
    headers, _ = call(
        v3,
        "POST",
        "/auth/tokens",
        body={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "admin",
                            "domain": {"id": "default"},
                            "password": admin_password,
                        }
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        },
    )
    tok = headers["X-Subject-Token"]

    def role_id(name):
        _, r = call(v3, "GET", "/roles?name=" + name, tok)
        if r["roles"]:
            return r["roles"][0]["id"]
        _, r = call(v3, "POST", "/roles", tok, {"role": {"name": name}})
        return r["role"]["id"]

    def project(name):
        _, r = call(v3, "POST", "/projects", tok, {"project": {"name": name, "domain_id": "default"}})
        return r["project"]["id"]

    def user(name, project_id, role):
        password = secrets.token_urlsafe(18)
        _, r = call(
            v3,
            "POST",
            "/users",
            tok,
            {"user": {"name": name, "domain_id": "default", "password": password,
                      "default_project_id": project_id}},
        )
        uid = r["user"]["id"]
        call(v3, "PUT", "/projects/%s/users/%s/roles/%s" % (project_id, uid, role), tok)
        return uid, password

    member = role_id("member")
    service_role = role_id("service")
    out = {}
    for key, pname, uname in (("A", "km-a", "alice"), ("B", "km-b", "bob")):
        pid = project(pname)
        uid, pw = user(uname, pid, member)
        out.update({
            "KEYMGR_TEST_OS_PROJECT_%s" % key: pname,
            "KEYMGR_TEST_OS_PROJECT_%s_ID" % key: pid,
            "KEYMGR_TEST_OS_USER_%s" % key: uname,
            "KEYMGR_TEST_OS_USER_%s_ID" % key: uid,
            "KEYMGR_TEST_OS_PASSWORD_%s" % key: pw,
        })
    spid = project("service")
    suid, spw = user("keymgr-service", spid, service_role)
    out.update({
        "KEYMGR_TEST_OS_SERVICE_PROJECT": "service",
        "KEYMGR_TEST_OS_SERVICE_USER": "keymgr-service",
        "KEYMGR_TEST_OS_SERVICE_USER_ID": suid,
        "KEYMGR_TEST_OS_SERVICE_PASSWORD": spw,
        "KEYMGR_TEST_OS_DOMAIN": "Default",
        "KEYMGR_TEST_OS_REGION": "RegionOne",
    })

    _, r = call(v3, "POST", "/services", tok,
                {"service": {"type": "key-manager", "name": "barbican", "enabled": True}})
    sid = r["service"]["id"]
    for iface in ("public", "internal", "admin"):
        call(v3, "POST", "/endpoints", tok,
             {"endpoint": {"service_id": sid, "interface": iface, "url": barbican,
                           "region_id": "RegionOne", "enabled": True}})

    with open(env_file, "a") as f:
        for k, v in out.items():
            f.write("export %s=%s\n" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())

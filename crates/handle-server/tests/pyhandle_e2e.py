#!/usr/bin/env python3
"""pyhandle 1.5.0 end-to-end cycle against a running node (issue 6, "Real client interop").

Usage: python3 pyhandle_e2e.py http://127.0.0.1:8000
The node must have prefix 21.T999 homed and 300:21.T999/ADMIN with secret "secret"
(`cargo run -p handle-server --example serve -- 2641 8000` does that).
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import sys
import uuid

import requests
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
PREFIX = "21.T999"
HANDLE = f"{PREFIX}/obj-{uuid.uuid4().hex[:8]}"
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + (f" ({detail})" if detail and not cond else ""))


reader = PyHandleClient("rest").instantiate_for_read_access(handle_server_url=URL)
admin_rec = reader.retrieve_handle_record(f"{PREFIX}/ADMIN")
check("read-only resolve of the admin handle", admin_rec is not None and "HS_ADMIN" in admin_rec, admin_rec)
check("missing handle resolves to None", reader.retrieve_handle_record(f"{PREFIX}/does-not-exist") is None)

try:
    PyHandleClient("rest").instantiate_with_username_and_password(URL, f"300:{PREFIX}/ADMIN", "wrong", HTTPS_verify=False).register_handle(
        f"{PREFIX}/never", "https://example.org/never", overwrite=False)
    check("wrong password is refused", False)
except HandleAuthenticationError:
    check("wrong password is refused", True)

client = PyHandleClient("rest").instantiate_with_username_and_password(URL, f"300:{PREFIX}/ADMIN", "secret", HTTPS_verify=False)
created = client.register_handle(HANDLE, "https://example.org/first", checksum="abc", overwrite=False)
check("register", created == HANDLE, created)
rec = client.retrieve_handle_record(HANDLE)
check("retrieve after register", rec and rec.get("URL") == "https://example.org/first" and rec.get("CHECKSUM") == "abc", rec)
client.modify_handle_value(HANDLE, URL="https://example.org/second")
check("modify URL", client.get_value_from_handle(HANDLE, "URL") == "https://example.org/second")
client.delete_handle_value(HANDLE, "CHECKSUM")
rec = client.retrieve_handle_record(HANDLE)
check("delete one value", rec and "CHECKSUM" not in rec and rec.get("URL") == "https://example.org/second", rec)
resp = requests.get(f"{URL}/{HANDLE}", allow_redirects=False)
check("proxy redirects to the URL value", resp.status_code == 302 and resp.headers.get("location") == "https://example.org/second", resp.status_code)
client.delete_handle(HANDLE)
check("delete handle", reader.retrieve_handle_record(HANDLE) is None)

client.register_handle(HANDLE, "https://example.org/again", overwrite=False)
try:
    client.register_handle(HANDLE, "https://example.org/third", overwrite=False)
    check("re-register raises HandleAlreadyExists", False)
except HandleAlreadyExistsException:
    check("re-register raises HandleAlreadyExists", True)
client.delete_handle(HANDLE)

generated = client.generate_and_register_handle(PREFIX, "https://example.org/generated")
check("generate and register", generated.startswith(PREFIX + "/") and client.get_value_from_handle(generated, "URL") == "https://example.org/generated", generated)
client.delete_handle(generated)

mint = requests.put(f"{URL}/api/handles/{PREFIX}/?mintNewSuffix=true", auth=(f"300%3A{PREFIX}/ADMIN", "secret"),
                    json={"values": [{"index": 1, "type": "URL", "data": "https://example.org/minted"}]})
minted = mint.json().get("handle", "")
check("mintNewSuffix PUT", mint.status_code == 201 and minted.startswith(PREFIX + "/") and len(minted) > len(PREFIX) + 1, mint.text)
if minted:
    requests.delete(f"{URL}/api/handles/{minted}", auth=(f"300%3A{PREFIX}/ADMIN", "secret"))

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)

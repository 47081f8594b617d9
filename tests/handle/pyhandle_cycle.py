#!/usr/bin/env python3
"""pyhandle's full client cycle, unchanged, against a running citybrain Handle node (issue 6).

Usage: pyhandle_cycle.py BASE_URL SECRET_FILE [cycle|verify]
  BASE_URL     the platform's HTTP API, e.g. http://127.0.0.1:1026 (REST under /api/handles)
  SECRET_FILE  file whose first line is the secret of 300:21.T999/ADMIN (handle.admin_secret_file)
  cycle        (default) read-only resolve, missing handle, wrong password refused, login,
               register, retrieve, modify, delete one value, proxy redirect, delete handle,
               re-register raising HandleAlreadyExists, generate-and-register, mintNewSuffix;
               leaves 21.T999/durable-check behind for `verify`
  verify       after a restart of the node: 21.T999/durable-check is still there
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import sys
import uuid

import requests
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

URL = sys.argv[1]
SECRET = open(sys.argv[2]).read().splitlines()[0].strip()
MODE = sys.argv[3] if len(sys.argv) > 3 else "cycle"
PREFIX = "21.T999"  # numeric prefixes: pyhandle mangles some letters
ADMIN = f"300:{PREFIX}/ADMIN"
HANDLE = f"{PREFIX}/obj-{uuid.uuid4().hex[:8]}"
DURABLE = f"{PREFIX}/durable-check"
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + (f" ({detail})" if detail and not cond else ""))


def finish():
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if results and passed == len(results) else 1)


reader = PyHandleClient("rest").instantiate_for_read_access(handle_server_url=URL)

if MODE == "verify":
    rec = reader.retrieve_handle_record(DURABLE)
    check("handle created before the restart is still there", rec and rec.get("URL") == "https://example.org/durable", rec)
    finish()

admin_rec = reader.retrieve_handle_record(f"{PREFIX}/ADMIN")
check("read-only resolve of the admin handle", admin_rec is not None and "HS_ADMIN" in admin_rec, admin_rec)
check("the admin secret is not readable anonymously", admin_rec is not None and "HS_SECKEY" not in admin_rec, admin_rec)
check("missing handle resolves to None", reader.retrieve_handle_record(f"{PREFIX}/does-not-exist") is None)

try:
    PyHandleClient("rest").instantiate_with_username_and_password(URL, ADMIN, SECRET + "-wrong", HTTPS_verify=False).register_handle(
        f"{PREFIX}/never", "https://example.org/never", overwrite=False)
    check("wrong password is refused", False)
except HandleAuthenticationError:
    check("wrong password is refused", True)
check("nothing was created with the wrong password", reader.retrieve_handle_record(f"{PREFIX}/never") is None)

client = PyHandleClient("rest").instantiate_with_username_and_password(URL, ADMIN, SECRET, HTTPS_verify=False)
created = client.register_handle(HANDLE, "https://example.org/first", checksum="abc", overwrite=False)
check("register", created == HANDLE, created)
rec = client.retrieve_handle_record(HANDLE)
check("retrieve after register", rec and rec.get("URL") == "https://example.org/first" and rec.get("CHECKSUM") == "abc", rec)
client.modify_handle_value(HANDLE, URL="https://example.org/second")
check("modify URL", client.get_value_from_handle(HANDLE, "URL") == "https://example.org/second")
client.delete_handle_value(HANDLE, "CHECKSUM")
rec = client.retrieve_handle_record(HANDLE)
check("delete one value", rec and "CHECKSUM" not in rec and rec.get("URL") == "https://example.org/second", rec)
resp = requests.get(f"{URL}/hdl/{HANDLE}", allow_redirects=False)
check("proxy redirects to the URL value", resp.status_code == 302 and resp.headers.get("location") == "https://example.org/second", resp.status_code)
client.delete_handle(HANDLE)
check("delete handle", reader.retrieve_handle_record(HANDLE) is None)

client.register_handle(HANDLE, "https://example.org/again", overwrite=False)
try:
    client.register_handle(HANDLE, "https://example.org/third", overwrite=False)
    check("re-register raises HandleAlreadyExists", False)
except HandleAlreadyExistsException:
    check("re-register raises HandleAlreadyExists", True)
check("the refused re-register changed nothing", client.get_value_from_handle(HANDLE, "URL") == "https://example.org/again")
client.delete_handle(HANDLE)

generated = client.generate_and_register_handle(PREFIX, "https://example.org/generated")
check("generate and register", generated.startswith(PREFIX + "/") and client.get_value_from_handle(generated, "URL") == "https://example.org/generated", generated)
client.delete_handle(generated)

auth = (f"300%3A{PREFIX}/ADMIN", SECRET)
mint = requests.put(f"{URL}/api/handles/{PREFIX}/?mintNewSuffix=true", auth=auth,
                    json={"values": [{"index": 1, "type": "URL", "data": "https://example.org/minted"}]})
minted = mint.json().get("handle", "")
check("mintNewSuffix PUT", mint.status_code == 201 and minted.startswith(PREFIX + "/") and len(minted) > len(PREFIX) + 1, mint.text)
if minted:
    requests.delete(f"{URL}/api/handles/{minted}", auth=auth)

client.register_handle(DURABLE, "https://example.org/durable", overwrite=True)
check("handle for the restart check registered", reader.retrieve_handle_record(DURABLE) is not None)
finish()

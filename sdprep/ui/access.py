"""Who may do what on the page (the README's "Security" section), decided by the server for each request.

- Preparing, building, checking, saving and loading configs: anyone who reaches the page. That is what the page is
  for, and it only writes inside the server's engines folder.
- Installing software (Setup, Upgrade: uv runs package builds as the server's user), deleting models, cleaning up
  the engines folder (sdprep.clean), and packing or importing builds (they write gigabytes into the engines folder):
  only the machine's own user, that is a client on this machine (loopback: 127.0.0.1, ::1) or, when the server was
  started with --auth, a logged-in user. Anyone else sees those controls disabled with the reason, and the server
  refuses the same requests sent without the page.
- The page installs only the named forks (sdprep.setup.pins.FORKS); a fork by git URL is for the command line.

The client's address is the one the connection comes from (Uvicorn takes X-Forwarded-For only from a proxy on this
machine), so a remote client cannot claim to be local.
"""

from __future__ import annotations

import ipaddress

import gradio as gr

from sdprep.messages import Message, msg


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1, and IPv4 loopback written as IPv6 (::ffff:127.0.0.1); anything else, a name included, no."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def is_owner(request: gr.Request | None) -> bool:
    """Whether this request comes from the machine's own user: logged in (--auth), or from this machine."""
    if request is None:
        return False
    if getattr(request, "username", None):
        return True
    client = getattr(request, "client", None)
    return is_loopback(getattr(client, "host", None))


def owner_only(action: str, request: gr.Request | None) -> Message | None:
    """None when `request` may do `action` ("setup", "delete", "clean"), else why not (shown beside the disabled
    control)."""
    return None if is_owner(request) else msg(f"access_{action}_owner_only")

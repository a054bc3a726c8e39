#!/usr/bin/python3
"""Misbehaving SSH clients for Gatehouse's end-to-end tests (paramiko).

Stock OpenSSH always plays by the rules; these do not. Each mode prints
one JSON object on stdout describing what happened, for the Rust test to
check. Run with the system Python (Debian's python3-paramiko, installed by
scripts/setup):

  badclient.py HOST PORT LOGIN KEY overrun BYTES COMMAND
      Opens a session channel, runs COMMAND, then sends BYTES of
      CHANNEL_DATA as raw packets, ignoring the window the server
      advertised (paramiko's Channel.send would respect it).
  badclient.py HOST PORT LOGIN KEY channels COUNT
      Opens COUNT session channels and keeps them idle; then closes three
      of the opened ones and opens three more.
  badclient.py HOST PORT LOGIN KEY slow-auth SECONDS COMMAND
      Completes the banner and key exchange, waits SECONDS before
      authenticating (a passphrase prompt, a hardware key touch), then runs
      COMMAND and prints its output.

Options before HOST: `--source ADDR` binds the client socket to ADDR;
`--ready FILE` creates FILE once the key exchange is complete.
"""

import json
import socket
import sys
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_DATA
from paramiko.message import Message


def connect(host, port, source):
    bind = (source, 0) if source else None
    sock = socket.create_connection((host, port), timeout=30, source_address=bind)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=30)
    return transport


def authenticate(transport, login, key_path):
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    transport.auth_publickey(login, key)


def overrun(transport, total, command):
    chan = transport.open_session()
    chan.exec_command(command)
    chunk = b"x" * 32768
    sent = 0
    error = None
    try:
        while sent < total and transport.is_active():
            m = Message()
            m.add_byte(cMSG_CHANNEL_DATA)
            m.add_int(chan.remote_chanid)
            m.add_string(chunk)
            # Below Channel.send: no window accounting at all.
            transport._send_user_message(m)
            sent += len(chunk)
    except Exception as e:  # the server hung up: what we expect
        error = repr(e)
    # Give the transport a moment to notice a disconnect in flight.
    deadline = time.time() + 10
    while transport.is_active() and time.time() < deadline:
        time.sleep(0.1)
    return {"sent": sent, "error": error, "active": transport.is_active()}


def channels(transport, count):
    opened, refused = [], []
    for _ in range(count):
        try:
            opened.append(transport.open_session(timeout=10))
        except paramiko.ChannelException as e:
            refused.append(e.code)
    for chan in opened[:3]:
        chan.close()
    reopened = 0
    deadline = time.time() + 10
    while reopened < 3 and time.time() < deadline:
        try:
            transport.open_session(timeout=10)
            reopened += 1
        except paramiko.ChannelException:
            time.sleep(0.2)
    return {"opened": len(opened), "refused": refused, "reopened": reopened}


def slow_auth(transport, login, key_path, seconds, command):
    time.sleep(seconds)
    authenticate(transport, login, key_path)
    chan = transport.open_session()
    chan.exec_command(command)
    out = b""
    while True:
        data = chan.recv(65536)
        if not data:
            break
        out += data
    return {"status": chan.recv_exit_status(), "stdout": out.decode("utf-8", "replace")}


def main(argv):
    source = ready = None
    while len(argv) > 2 and argv[1] in ("--source", "--ready"):
        if argv[1] == "--source":
            source = argv[2]
        else:
            ready = argv[2]
        argv = argv[:1] + argv[3:]
    host, port, login, key_path, mode = argv[1:6]
    rest = argv[6:]
    transport = connect(host, int(port), source)
    if ready:
        open(ready, "w").close()
    try:
        if mode == "slow-auth":
            result = slow_auth(transport, login, key_path, float(rest[0]), rest[1])
        else:
            authenticate(transport, login, key_path)
            if mode == "overrun":
                result = overrun(transport, int(rest[0]), rest[1])
            elif mode == "channels":
                result = channels(transport, int(rest[0]))
            else:
                raise SystemExit("unknown mode " + mode)
    finally:
        transport.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)

"""A CoAP client that is not libcoap: aiocoap over DTLS-PSK (tinydtls, through DTLSSocket), as
pytradfri and Home Assistant talk to a TRÅDFRI gateway. The simulator's interop test drives it.

Usage: python aiocoap_client.py HOST PORT

Reads one command per line on standard input and answers with JSON lines on standard output:

    connect IDENTITY KEY          a fresh client (a new DTLS session) with these credentials
    get PATH | put PATH JSON | post PATH [JSON]
                                  one request -> {"event": "response", "code": "2.05", ...}
    observe NAME PATH VALUE       GET with Observe VALUE -> {"event": "registered", ...}, then
                                  {"event": "notification", "name": NAME, ...} for each one
                                  and {"event": "ended", "name": NAME, ...} when it ends
    deregister NAME               GET with Observe 1 and the observation's token
    forget NAME                   stop listening (aiocoap answers the next notification with RST)
    retry-get PATH SECONDS        a fresh client with the same credentials and GET until 2.xx
                                  (after a gateway reboot)
    quit

Every answer carries "command" (the line it answers). Payloads are text.
"""

import asyncio
import json
import sys
import time

from aiocoap import GET, POST, PUT, Context, Message, error, protocol, tokenmanager


def registers(message):
    """A TRÅDFRI gateway takes an Observe option of any value but 1 in a GET as a registration."""
    value = message.opt.observe
    return value is not None and value != 1


# aiocoap 0.4.17 keeps listening for notifications only after a registration with Observe 0
# (RFC 7641's value). Some client libraries send another value (30, say) and the gateway accepts
# it; this client is made one of them: the two places where aiocoap asks "was the request a
# registration?" take any value but 1. Everything else (ordering of notifications by their
# sequence numbers, block-wise transfer, acknowledgements, RST for unknown tokens) is aiocoap's.
def process_response(self, response):
    key = (response.token, response.remote)
    if key not in self.outgoing_requests:
        key = (response.token, None)
    request = self.outgoing_requests.get(key)
    if request is None:
        self.log.info("Response %r could not be matched to any request", response)
        return False
    final = not (registers(request.request) and response.opt.observe is not None)
    if final:
        self.outgoing_requests.pop(key)
    request.add_response(response, is_last=final)
    return True


tokenmanager.TokenManager.process_response = process_response
_request_init = protocol.Request.__init__


def request_init(self, pipe, loop, log):
    value = pipe.request.opt.observe
    if not registers(pipe.request) or value == 0:
        return _request_init(self, pipe, loop, log)
    # Only for the decision whether to expect notifications; the message goes out later, with
    # its own value.
    pipe.request.opt.observe = 0
    try:
        _request_init(self, pipe, loop, log)
    finally:
        pipe.request.opt.observe = value


protocol.Request.__init__ = request_init


def say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def describe(message):
    return {
        "code": message.code.dotted,
        "observe": message.opt.observe,
        "payload": message.payload.decode("utf-8", "replace"),
    }


class Client:
    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.context = None
        self.credentials = None
        self.observations = {}

    def uri(self, path):
        return f"coaps://{self.host}:{self.port}/{path}"

    async def connect(self, identity, key):
        if self.context is not None:
            await self.context.shutdown()
        self.observations = {}
        self.credentials = (identity, key)
        self.context = await Context.create_client_context(transports=["tinydtls"])
        self.context.client_credentials.load_from_dict(
            {
                f"coaps://{self.host}:{self.port}/*": {
                    "dtls": {"psk": {"ascii": key}, "client-identity": {"ascii": identity}}
                }
            }
        )

    async def request(self, code, path, body=None, timeout=15):
        message = Message(code=code, uri=self.uri(path), payload=(body or "").encode())
        return await asyncio.wait_for(self.context.request(message).response, timeout)

    async def observe(self, name, path, value):
        message = Message(code=GET, uri=self.uri(path), observe=value)
        request = self.context.request(message)
        first = await asyncio.wait_for(request.response, 15)
        self.observations[name] = (first.token, first.remote, path, request)
        asyncio.get_running_loop().create_task(self.follow(name, request))
        return first

    async def follow(self, name, request):
        try:
            async for notification in request.observation:
                say(event="notification", name=name, **describe(notification))
            say(event="ended", name=name, reason="finished")
        except error.NotObservable:
            say(event="ended", name=name, reason="not observable")
        except error.ObservationCancelled:
            say(event="ended", name=name, reason="cancelled")
        except Exception as failure:  # what the observation ended with, for the test to see
            say(event="ended", name=name, reason=f"{type(failure).__name__}: {failure}")

    async def deregister(self, name):
        """GET with Observe 1 and the registration's token (RFC 7641 §3.6). aiocoap has no call
        for it, so the message goes to the message layer directly; its answer reaches the
        observation (with no Observe option: the observation's last message)."""
        token, remote, path, _ = self.observations[name]
        message = Message(code=GET, uri=self.uri(path), observe=1)
        interface = await self.context.find_remote_and_interface(message)
        message.token = token
        message.remote = remote
        interface.token_interface.send_message(message, lambda: None)

    async def retry_get(self, path, seconds):
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            await self.connect(*self.credentials)
            try:
                response = await self.request(GET, path, timeout=3)
                if response.code.is_successful():
                    return response
                last = describe(response)
            except Exception as failure:  # the gateway is still away; try again
                last = f"{type(failure).__name__}: {failure}"
            await asyncio.sleep(0.5)
        raise TimeoutError(f"no answer within {seconds} s (last: {last})")


async def main():
    client = Client(sys.argv[1], int(sys.argv[2]))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    say(event="ready")
    while line := (await reader.readline()).decode():
        line = line.strip()
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        try:
            if verb == "connect":
                identity, key = rest.split(" ", 1)
                await client.connect(identity, key)
                say(event="connected", command=line)
            elif verb in ("get", "put", "post"):
                path, _, body = rest.partition(" ")
                code = {"get": GET, "put": PUT, "post": POST}[verb]
                response = await client.request(code, path, body)
                say(event="response", command=line, path=path, **describe(response))
            elif verb == "observe":
                name, path, value = rest.split(" ")
                first = await client.observe(name, path, int(value))
                say(event="registered", command=line, name=name, path=path, **describe(first))
            elif verb == "deregister":
                await client.deregister(rest)
                say(event="deregistering", command=line, name=rest)
            elif verb == "forget":
                client.observations[rest][3].observation.cancel()
                say(event="forgotten", command=line, name=rest)
            elif verb == "retry-get":
                path, seconds = rest.split(" ")
                response = await client.retry_get(path, float(seconds))
                say(event="response", command=line, path=path, **describe(response))
            elif verb == "quit":
                break
            else:
                say(event="error", command=line, error="unknown command")
        except Exception as failure:
            say(event="error", command=line, error=f"{type(failure).__name__}: {failure}")
    if client.context is not None:
        await client.context.shutdown()


asyncio.run(main())

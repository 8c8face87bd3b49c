"""``cosmoscope serve``: the read-only dashboard in a browser.

Examples
--------
1. The dashboard of the default catalog at http://localhost:5006/dashboard::

    $ cosmoscope serve

2. Another catalog, port and refresh interval::

    $ cosmoscope serve --catalog sqlite:///data/catalog.sqlite --port 8080 --refresh 30

3. Behind a proxy that forwards ``/user/alice/cosmoscope/`` with the path kept, at the host name
   browsers use for the proxy::

    $ cosmoscope serve --port 5006 --prefix /user/alice/cosmoscope --allow-websocket-origin hub.example.org

4. For a team on the local network (give the host names browsers will use)::

    $ cosmoscope serve --address 0.0.0.0 --allow-websocket-origin obs-catalog.example.org:5006

Only requests whose ``Host`` is an allowed name are answered (DNS rebinding cannot reach the
dashboard from a web page): the local names by default, the hosts of --allow-websocket-origin,
and those given with --allowed-host or $COSMOSCOPE_ALLOWED_HOSTS. See docs/security.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from cosmoscope.cli import argtypes


REFRESH = argtypes.number(float, low=0, what="a refresh interval in seconds", example="10 (0 turns it off)")

#: The Panel app ``panel serve`` runs.
DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ui", "dashboard.py")
#: The Bokeh auth module that answers only allowed Host names.
HOSTCHECK = os.path.join(os.path.dirname(DASHBOARD), "hostcheck.py")


def _prefix(text: str) -> str:
    text = text.strip()
    if not text.strip("/"):
        return ""
    return "/" + text.strip("/")


def register(sub, common) -> None:
    p = sub.add_parser(
        "serve", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve the dashboard (search, summaries, charts, lineage, problems) in a browser",
        description="Serve the read-only Panel dashboard of a catalog with `panel serve`. It refreshes by "
                    "itself when new data arrive.",
        epilog="examples:\n"
               "  cosmoscope serve\n"
               "  cosmoscope serve --catalog sqlite:///data/catalog.sqlite --port 8080\n"
               "  cosmoscope serve --prefix /user/alice/cosmoscope --allow-websocket-origin hub.example.org\n"
               "  cosmoscope serve --address 0.0.0.0 --allow-websocket-origin host.example.org:5006")
    p.add_argument("--port", type=argtypes.port, default=5006,
                   help="port to listen on (default 5006; 0 picks a free one)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--prefix", type=_prefix, default="",
                   help="URL path the dashboard lives under when a proxy forwards it with the path kept, "
                        "e.g. /user/alice/cosmoscope; needs --allow-websocket-origin with the proxy's host name")
    p.add_argument("--allow-websocket-origin", action="append", metavar="HOST[:PORT]",
                   help="host a browser may connect from (repeatable); default: the address and port served")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="host name the dashboard answers to (repeatable; '*' for any); default: "
                        "$COSMOSCOPE_ALLOWED_HOSTS, else localhost names and the --allow-websocket-origin hosts")
    p.add_argument("--refresh", type=REFRESH, default=10.0, metavar="SECONDS",
                   help="how often open pages check for new data (default 10; 0: never)")
    p.add_argument("--page-size", type=int, default=25, metavar="N", help="rows per results page (default 25)")
    p.add_argument("--show", action="store_true", help="open the dashboard in a web browser")
    p.set_defaults(func=cmd_serve)


def dashboard_hosts(args) -> list[str]:
    """The Host names the dashboard answers to (see :mod:`cosmoscope.hosts`)."""
    from cosmoscope.hosts import allowed_hosts, split_host

    given = list(args.allowed_host or [])
    if not given and not os.environ.get("COSMOSCOPE_ALLOWED_HOSTS"):
        given = [*allowed_hosts(None, args.address),
                 *(split_host(o) for o in args.allow_websocket_origin or [] if o != "*")]
    return allowed_hosts(given, args.address)


def panel_command(args, url: str) -> list[str]:
    """The ``panel serve`` command line for these arguments."""
    from cosmoscope.errors import InvalidArgumentError

    cmd = [sys.executable, "-m", "panel", "serve", DASHBOARD, "--port", str(args.port), "--address", args.address]
    origins = list(args.allow_websocket_origin or [])
    if args.prefix:
        if not origins:
            # Behind a proxy the browser's Origin is the proxy's host, which cannot be guessed here;
            # '*' would let any web page talk to the dashboard.
            raise InvalidArgumentError("--prefix needs the host name browsers reach the proxy at: give it with "
                                       "--allow-websocket-origin HOST[:PORT], e.g. hub.example.org")
        cmd += ["--prefix", args.prefix]
    elif not origins and args.port:
        # Bokeh allows only localhost:PORT by default; a browser at 127.0.0.1 or at the served
        # address is just as local.
        hosts = ["localhost", "127.0.0.1"] + ([args.address] if args.address not in ("127.0.0.1", "0.0.0.0", "::",
                                                                                     "localhost") else [])
        origins = [f"{h}:{args.port}" for h in hosts]
    for origin in origins:
        cmd += ["--allow-websocket-origin", origin]
    cmd += ["--auth-module", HOSTCHECK]
    if args.show:
        cmd.append("--show")
    cmd += ["--args", "--catalog", url, "--refresh", str(args.refresh), "--page-size", str(args.page_size)]
    return cmd


def cmd_serve(args) -> int:
    from cosmoscope.catalog import default_catalog_url, open_catalog
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.ports import check_port_free

    if args.page_size < 1:
        raise InvalidArgumentError(f"--page-size must be at least 1, not {args.page_size}")
    url = getattr(args, "catalog", None) or default_catalog_url()
    # Fail here, in words, rather than on a web page nobody is looking at yet.
    with open_catalog(url, readonly=True) as cat:
        url = cat.url
    check_port_free(args.address, args.port)  # before announcing a URL that would not answer
    cmd = panel_command(args, url)
    env = dict(os.environ, COSMOSCOPE_CATALOG=url, COSMOSCOPE_ALLOWED_HOSTS=",".join(dashboard_hosts(args)))
    host = "localhost" if args.address in ("127.0.0.1", "0.0.0.0", "::") else args.address
    if args.port and not getattr(args, "quiet", False):
        print(f"cosmoscope: dashboard of {url} at http://{host}:{args.port}{args.prefix}/dashboard "
              "(Ctrl-C stops it)", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, env=env)

    def stop(signum, frame):  # pass a termination on to the server, then wait for it below
        proc.send_signal(signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        code = proc.wait()
        if code > 0:  # the server failed (a signal we passed on gives a negative code)
            print(f"cosmoscope serve: error: the dashboard server stopped with exit code {code}; its own "
                  "message is above", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:  # Ctrl-C: the way to stop it, so a clean stop is a success (as for `api`)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return 1
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)

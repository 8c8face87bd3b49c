"""The Panel dashboard beside JupyterLab, through jupyter-server-proxy (binder, JupyterHub).

Declared as a ``jupyter_serverproxy_servers`` entry point. Where jupyter-server-proxy is
installed, the JupyterLab launcher gets a *Cosmoscope dashboard* tile, and the first visit to
``{base_url}cosmoscope/dashboard`` starts ``cosmoscope serve`` for the default catalog
(``$COSMOSCOPE_CATALOG``, else ``~/.local/share/cosmoscope/catalog.sqlite``) on a free port.
The proxy forwards the whole path (``absolute_url``), so the dashboard is served under the same
prefix and its links and websocket stay inside the user's server.
"""

from __future__ import annotations

import sys

#: The URL path under the notebook server's base URL.
NAME = "cosmoscope"


def setup_dashboard() -> dict:
    """The jupyter-server-proxy configuration of the dashboard (``{port}`` and ``{base_url}``
    are filled in by the proxy)."""
    return {
        "command": [sys.executable, "-m", "cosmoscope", "serve", "--port", "{port}",
                    "--prefix", "{base_url}" + NAME, "--allow-websocket-origin", "localhost", "--quiet"],
        # The proxy forwards the browser's Host and Origin (the hub's public name, unknown here);
        # it has authenticated the user, so it speaks for the dashboard's own local name instead,
        # and the dashboard keeps refusing every other name (DNS rebinding).
        "request_headers_override": {"Host": "localhost", "Origin": "http://localhost"},
        "absolute_url": True,
        # Panel and the catalog take a few seconds to start on a small binder machine.
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": {"enabled": True, "title": "Cosmoscope dashboard", "path_info": f"{NAME}/dashboard"},
    }

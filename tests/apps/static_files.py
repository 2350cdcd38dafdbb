"""wrap_static under /static over the directory named by SCALLION_STATIC_ROOT (real-server traversal tests)."""

import os

from scallion import build_server, standard_not_found
from scallion.middlewares import apply_middleware, wrap_static

app = build_server(apply_middleware(wrap_static(os.environ["SCALLION_STATIC_ROOT"], "/static"))(standard_not_found))

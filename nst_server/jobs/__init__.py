"""The async jobs API: submit a style transfer, follow it, fetch its result, cancel it.

    nst-jobs --address 127.0.0.1:8085 --inference http://127.0.0.1:8080 --run-dir DIR

A small aiohttp service beside TorchServe (``make serve`` starts it): ``POST /v1/jobs`` takes
the synchronous API's body, validates it with the handler's own parser and queues it in a
store (:mod:`.store`, SQLite in the run folder); runners (:mod:`.runner`) send each job to
the pod's TorchServe in streaming mode, record its progress and keep its result; ``DELETE``
cancels a queued job at once and a running one inside the worker, between two steps
(:mod:`handler.cancel`). The HTTP side is :mod:`.service`.
"""

DEFAULT_ADDRESS = "127.0.0.1:8085"
ADDRESS_ENV = "NST_JOBS_ADDRESS"  # host:port of the jobs service; empty: none

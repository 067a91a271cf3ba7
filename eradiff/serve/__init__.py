"""``eradiff serve``: a local web page to paint a mask and erase, plus an HTTP API.

| module   | what                                                                              |
| -------- | --------------------------------------------------------------------------------- |
| `app`    | ``create_app(model, settings)``: the FastAPI app (page, ``/api/*`` routes)         |
| `worker` | ``ModelWorker``: one thread per model, a bounded queue, progress, cancellation   |
| `inputs` | multipart parsing with limits, upload decoding and checks, options → 4xx errors   |
| `static` | the page: ``index.html``, ``app.js``, ``style.css`` (no build step)               |

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart). Erasing is the pipeline's
:func:`eradiff.pipeline.erase.erase`; nothing here re-implements it.
"""

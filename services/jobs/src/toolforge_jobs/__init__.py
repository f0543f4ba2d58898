"""Toolforge jobs API (REFERENCE.md, "Jobs API (v1)"); see ``services/jobs/README.md``.

Pure core, no cluster access:

- ``models``: request/response models (``JobSpec``, ``Job``, the envelopes);
- ``quantity``: Kubernetes resource quantities;
- ``schedule``: cron validation, deterministic ``@daily``-style lines, fire times;
- ``images``: the image list from ConfigMap ``tf-public/image-config`` and its cache;
- ``builders``: ``JobSpec`` -> Kubernetes object dicts and back, restart helpers;
- ``status``: object/pod/event dicts -> job status;
- ``limits``: LimitRange checks and the quota view;
- ``logs``: pod log lines -> NDJSON records;
- ``errors``: ``JobSpecError`` and the HTTP-mapped errors.

The service:

- ``storage``: kube-apiserver access (one pooled client, impersonation, error mapping);
- ``service``: the business rules of every endpoint;
- ``app``: ``create_app(settings)``, the FastAPI app; ``server``/``__main__``: uvicorn, the
  ``toolforge-jobs-api`` command; ``settings``, ``metrics``.
"""

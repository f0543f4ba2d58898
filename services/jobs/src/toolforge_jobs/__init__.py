"""Toolforge jobs API (REFERENCE.md, "Jobs API (v1)").

Pure core, no cluster access:

- ``models``: request/response models (``JobSpec``, ``Job``, the envelopes);
- ``quantity``: Kubernetes resource quantities;
- ``schedule``: cron validation, deterministic ``@daily``-style lines, fire times;
- ``images``: the image list from ConfigMap ``tf-public/image-config`` and its cache;
- ``builders``: ``JobSpec`` -> Kubernetes object dicts and back, restart helpers;
- ``status``: object/pod/event dicts -> job status;
- ``limits``: LimitRange checks and the quota view;
- ``errors``: ``JobSpecError``, the 400 of every rule needing more than the request.
"""

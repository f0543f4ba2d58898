"""The field names of a container log line in the store: the contract between the collector
(``vlagent -kubernetesCollector``, deployed by ``toolforge_dev.logcollector``) and every reader.

vlagent names the Kubernetes metadata as vector.dev's ``kubernetes_logs`` source does
(VictoriaLogs ``app/vlagent/kubernetescollector/collector.go``, ``getCommonFields``), and the
store adds its own ``_time``, ``_msg``, ``_stream`` and ``_stream_id`` (VictoriaLogs key
concepts, https://docs.victoriametrics.com/victorialogs/keyconcepts/):

=====================  ==================================================  =============
constant               field                                               stream field
=====================  ==================================================  =============
``NAMESPACE``          ``kubernetes.pod_namespace`` (``tool-<tool>``)       yes
``JOB``                ``kubernetes.pod_labels.app.kubernetes.io/name``     yes
``POD``                ``kubernetes.pod_name``                              yes
``CONTAINER``          ``kubernetes.container_name``                        yes
``CONTAINER_ID``       ``kubernetes.container_id`` (``containerd://<id>``)  no
``TIME``               ``_time``: the container runtime's timestamp of the  -
                       line (RFC 3339, nanoseconds, UTC)
``MESSAGE``            ``_msg``: the line as printed, without the newline   -
``STREAM_ID``          ``_stream_id``: 32 hex digits naming the stream      -
=====================  ==================================================  =============

The stream fields (:data:`STREAM_FIELDS`, passed to vlagent as
``-kubernetesCollector.streamFields``) form the index: a ``_stream:{...}`` filter on them
selects whole streams from the index instead of scanning rows (LogsQL "stream filter"). A
stream is one container of one pod, so a restarted container (same name, same pod) continues
its stream; ``CONTAINER_ID`` tells the runs apart.

A line that a tool prints as a JSON object is split by vlagent into fields (its ``message``,
``msg`` or ``log`` key becomes ``_msg``, its ``time``, ``timestamp`` or ``ts`` key becomes
``_time`` when it parses as RFC 3339): see ``docs/logs.md``. A JSON line that names a stream
field itself cannot move into another tool's stream: the store drops such a row (duplicate
stream field), which the cluster tests prove.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "kubernetes.pod_namespace"
#: The pod label ``app.kubernetes.io/name``: the job's name for pods of the jobs API.
JOB_LABEL: Final = "app.kubernetes.io/name"
JOB: Final = f"kubernetes.pod_labels.{JOB_LABEL}"
POD: Final = "kubernetes.pod_name"
CONTAINER: Final = "kubernetes.container_name"
CONTAINER_ID: Final = "kubernetes.container_id"
TIME: Final = "_time"
MESSAGE: Final = "_msg"
STREAM_ID: Final = "_stream_id"

#: The collector's stream fields, in the order given to ``-kubernetesCollector.streamFields``.
STREAM_FIELDS: Final = (NAMESPACE, JOB, POD, CONTAINER)

#: The fields a reader asks for (the ``fields`` pipe of every query of this package).
RESULT_FIELDS: Final = (TIME, STREAM_ID, NAMESPACE, JOB, POD, CONTAINER, CONTAINER_ID, MESSAGE)

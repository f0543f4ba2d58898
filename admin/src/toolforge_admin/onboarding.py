"""Tool onboarding: what Toolforge's maintain-kubeusers does, as one idempotent service.

``tool create NAME`` converges the cluster and the tool's home on this state:

1. the shared ClusterRole ``toolforge-tool`` (what every tool may do in its own namespace)
   and the ValidatingAdmissionPolicy ``toolforge-tool-pods`` with its binding (what a pod in
   a tool namespace may be: see :func:`tool_pod_policy`), and the HTTPRoute policy
   ``toolforge-tool-httproutes`` (:mod:`toolforge_admin.web_policies`), and the policies of
   :mod:`toolforge_admin.policies` on images, Services and volumes;
2. namespace ``tool-NAME``, labelled ``toolforge.org/tool=NAME``, with the tool's stable
   numeric uid in annotation ``toolforge.org/uid`` (used by the jobs API as ``runAsUser``)
   and its home's host path in ``toolforge.org/home`` (the one hostPath its pods may mount),
   with its NetworkPolicies (:func:`toolforge_admin.policies.tool_network_policies`);
3. RoleBinding ``toolforge-tool`` binding user ``NAME`` to that ClusterRole;
4. ResourceQuota and LimitRange ``tool-NAME`` (REFERENCE.md, "Kubernetes mapping");
5. the home directory ``<homes_dir>/NAME`` owned by the uid;
6. a client certificate ``CN=NAME,O=toolforge`` obtained through the
   CertificateSigningRequest API (signer ``kubernetes.io/kube-apiserver-client``), kept as
   ``~/.toolskube/client.crt`` and ``client.key``;
7. ``~/.kube/config`` pointing at them (REFERENCE.md: the ``~/.toolskube/`` layout).

Each step reads first and writes only when something differs, so a second run reports every
step ``unchanged`` and changes no object, and a run that failed half-way is completed by the
next one. The certificate is re-issued when it is missing, does not match its key, was not
issued by the cluster CA, or expires within ``renew_before_days``.

Tool names are validated before anything is touched: an invalid name creates nothing. The
objects are built by the pure builders of :mod:`toolforge_admin.objects`; every cluster call
goes through the kit's transport (:class:`toolforge_kit.KubeClient`, as cluster-admin), whose
errors become :class:`OnboardingError`.
Concurrent ``create`` calls for *different* new tools may race on uid allocation; the admin
command is meant to be run by one operator (or one controller) at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from toolforge_admin import pki, policies, web_policies
from toolforge_admin.objects import (
    CLUSTER_ROLE,
    POD_POLICY,
    Obj,
    contains,
    csr_approval,
    csr_name,
    csr_object,
    kubeconfig_document,
    limit_range,
    namespace_object,
    registry_pull_secret,
    resource_quota,
    role_binding,
    tool_cluster_role,
    tool_pod_policy,
    tool_pod_policy_binding,
)
from toolforge_admin.results import (
    Action,
    ClusterAccess,
    OnboardingError,
    Step,
    ToolInfo,
    ToolResult,
)
from toolforge_admin.settings import AdminSettings, RegistryPull
from toolforge_auth import tools
from toolforge_auth.tools import TOOL_LABEL, UID_ANNOTATION, namespace_for
from toolforge_kit.errors import APIError
from toolforge_kit.kube import KubeClient, Resource

__all__ = [
    "POD_POLICY",
    "TOOL_NAME_MAX",
    "ClusterAccess",
    "InvalidToolName",
    "OnboardingError",
    "Step",
    "ToolInfo",
    "ToolOnboarder",
    "ToolResult",
    "namespace_for",
    "validate_tool_name",
]

#: The longest tool name (the tool contract, :data:`toolforge_auth.tools.TOOL_NAME_MAX_LENGTH`).
TOOL_NAME_MAX = tools.TOOL_NAME_MAX_LENGTH

T = TypeVar("T")
_Objs = list[Obj]

_NAMESPACES = Resource("/api/v1", "namespaces", "Namespace", "v1")
_SERVICE_ACCOUNTS = Resource("/api/v1", "serviceaccounts", "ServiceAccount", "v1")
_QUOTAS = Resource("/api/v1", "resourcequotas", "ResourceQuota", "v1")
_LIMIT_RANGES = Resource("/api/v1", "limitranges", "LimitRange", "v1")
_SECRETS = Resource("/api/v1", "secrets", "Secret", "v1")
_RBAC = "/apis/rbac.authorization.k8s.io/v1"
_CLUSTER_ROLES = Resource(_RBAC, "clusterroles", "ClusterRole", "rbac.authorization.k8s.io/v1")
_ROLE_BINDINGS = Resource(_RBAC, "rolebindings", "RoleBinding", "rbac.authorization.k8s.io/v1")
_ADMISSION = "/apis/admissionregistration.k8s.io/v1"
_POLICIES = Resource(
    _ADMISSION,
    "validatingadmissionpolicies",
    "ValidatingAdmissionPolicy",
    "admissionregistration.k8s.io/v1",
)
_POLICY_BINDINGS = Resource(
    _ADMISSION,
    "validatingadmissionpolicybindings",
    "ValidatingAdmissionPolicyBinding",
    "admissionregistration.k8s.io/v1",
)
_NETWORK_POLICIES = Resource(
    "/apis/networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", "networking.k8s.io/v1"
)
_CSRS = Resource(
    "/apis/certificates.k8s.io/v1",
    "certificatesigningrequests",
    "CertificateSigningRequest",
    "certificates.k8s.io/v1",
)


class InvalidToolName(OnboardingError, tools.InvalidToolName):  # noqa: N818 - the rule it names
    """The tool name breaks the naming rules; nothing was created."""


def validate_tool_name(name: str) -> str:
    """``name`` if it is a valid tool name (the tool contract,
    :func:`toolforge_auth.tools.validate_tool_name`), else :class:`InvalidToolName`."""
    try:
        return tools.validate_tool_name(name)
    except tools.InvalidToolName as exc:
        raise InvalidToolName(str(exc)) from None


class ToolOnboarder:
    """Creates, lists, renews and deletes tools.

    ``kube`` is the kit's client with cluster-admin rights (it creates namespaces and approves
    CSRs); ``cluster`` tells which server and CA go into the tools' kubeconfigs.
    """

    def __init__(self, kube: KubeClient, cluster: ClusterAccess, settings: AdminSettings):
        self.kube = kube
        self.cluster = cluster
        self.settings = settings
        self._cluster_ca = x509.load_pem_x509_certificate(cluster.ca_pem)

    # ----- paths ------------------------------------------------------------------------------

    def home(self, tool: str) -> Path:
        """The tool's home directory."""
        return self.settings.homes_dir / tool

    def cert_path(self, tool: str) -> Path:
        """``~/.toolskube/client.crt``."""
        return self.home(tool) / ".toolskube" / "client.crt"

    def key_path(self, tool: str) -> Path:
        """``~/.toolskube/client.key``."""
        return self.home(tool) / ".toolskube" / "client.key"

    def kubeconfig_path(self, tool: str) -> Path:
        """``~/.kube/config``."""
        return self.home(tool) / ".kube" / "config"

    # ----- create -----------------------------------------------------------------------------

    async def create(self, tool: str) -> ToolResult:
        """Onboard ``tool`` (idempotent). Raises :class:`InvalidToolName` before any change,
        :class:`OnboardingError` when a step fails (a later run completes the rest)."""
        validate_tool_name(tool)
        ns = namespace_for(tool)
        result = ToolResult(tool=tool, namespace=ns, uid=None, home=self.home(tool))
        result.steps.append(await self._ensure_cluster_role())
        result.steps.extend(await self._ensure_pod_policy())
        result.steps.extend(await self._ensure_policies(web_policies.admission_policies()))
        result.steps.extend(await self._ensure_policies(policies.admission_policies(self.settings)))
        step, uid = await self._ensure_namespace(tool)
        result.uid = uid
        result.steps.append(step)
        for netpol in policies.tool_network_policies(tool, self.settings):
            result.steps.append(
                await self._converge(
                    "networkpolicy",
                    _NETWORK_POLICIES,
                    ns,
                    netpol,
                    same=policies.spec_equals(netpol),
                )
            )
        result.steps.append(await self._ensure_role_binding(tool))
        result.steps.append(await self._ensure_quota(tool))
        result.steps.append(await self._ensure_limit_range(tool))
        if self.settings.registry_pull is not None:
            result.steps.append(await self._ensure_pull_secret(tool, self.settings.registry_pull))
        result.steps.append(self._ensure_home(tool, uid))
        result.steps.append(await self._ensure_certificate(tool, uid, force=False))
        result.steps.append(self._ensure_kubeconfig(tool, uid))
        if step.action == "created":
            await self._wait_default_service_account(ns)
        return result

    async def _ensure_cluster_role(self) -> Step:
        desired = tool_cluster_role()
        return await self._converge(
            "clusterrole",
            _CLUSTER_ROLES,
            None,
            desired,
            same=lambda current: current.get("rules") == desired["rules"],
        )

    async def _ensure_pod_policy(self) -> list[Step]:
        policy = tool_pod_policy()
        binding = tool_pod_policy_binding()
        return [
            await self._converge(
                "pod policy",
                _POLICIES,
                None,
                policy,
                same=lambda current: contains(current.get("spec"), policy["spec"]),
            ),
            await self._converge(
                "pod policy binding",
                _POLICY_BINDINGS,
                None,
                binding,
                same=lambda current: contains(current.get("spec"), binding["spec"]),
            ),
        ]

    async def _ensure_policies(self, policies: list[tuple[str, Obj, Obj]]) -> list[Step]:
        """Converge ``(step label, ValidatingAdmissionPolicy, binding)`` triples."""
        steps = []
        for label, policy, binding in policies:
            for step, res, desired in (
                (label, _POLICIES, policy),
                (f"{label} binding", _POLICY_BINDINGS, binding),
            ):
                steps.append(
                    await self._converge(step, res, None, desired, same=_same_spec(desired))
                )
        return steps

    async def _ensure_namespace(self, tool: str) -> tuple[Step, int]:
        name = namespace_for(tool)
        current = await self._call("read namespace", self.kube.get(_NAMESPACES, None, name))
        if current is not None:
            if (current.get("status") or {}).get("phase") == "Terminating":
                raise OnboardingError(
                    f"namespace {name} is being deleted; run the command again once it is gone"
                )
            recorded = _uid_of(current)
            uid = recorded if recorded is not None else await self._new_uid(tool)
            wanted = namespace_object(tool, uid=uid, home=str(self.home(tool)))["metadata"]
            meta = current.setdefault("metadata", {})
            labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
            if all(labels.get(k) == v for k, v in wanted["labels"].items()) and all(
                annotations.get(k) == v for k, v in wanted["annotations"].items()
            ):
                return Step("namespace", "unchanged", name), uid
            meta["labels"] = {**labels, **wanted["labels"]}
            meta["annotations"] = {**annotations, **wanted["annotations"]}
            await self._call("update namespace", self.kube.replace(_NAMESPACES, None, current))
            return Step("namespace", "updated", name), uid
        uid = await self._new_uid(tool)
        body = namespace_object(tool, uid=uid, home=str(self.home(tool)))
        await self._call("create namespace", self.kube.create(_NAMESPACES, None, body))
        return Step("namespace", "created", f"{name} (uid {uid})"), uid

    async def _new_uid(self, tool: str) -> int:
        """A uid for a new tool: its old home's owner if that is in range, else max + 1."""
        lo, hi = self.settings.uid_min, self.settings.uid_max
        uids = (_uid_of(ns) for ns in await self._tool_namespaces())
        used = {uid for uid in uids if uid is not None}
        home = self.home(tool)
        if home.is_dir() and lo <= home.stat().st_uid <= hi and home.stat().st_uid not in used:
            return home.stat().st_uid
        uid = max(used | {lo - 1}) + 1
        if uid > hi:
            free = sorted(set(range(lo, hi + 1)) - used)
            if not free:
                raise OnboardingError(f"no free uid left in {lo}..{hi}")
            uid = free[0]
        return uid

    async def _ensure_role_binding(self, tool: str) -> Step:
        ns = namespace_for(tool)
        desired = role_binding(tool)
        current = await self._call(
            "read RoleBinding", self.kube.get(_ROLE_BINDINGS, ns, CLUSTER_ROLE)
        )
        if current is None:
            await self._call("create RoleBinding", self.kube.create(_ROLE_BINDINGS, ns, desired))
            return Step("rolebinding", "created", f"user {tool} -> {CLUSTER_ROLE}")
        if (
            current.get("subjects") == desired["subjects"]
            and current.get("roleRef") == desired["roleRef"]
        ):
            return Step("rolebinding", "unchanged", CLUSTER_ROLE)
        if current.get("roleRef") != desired["roleRef"]:
            # roleRef is immutable: replace the binding.
            await self._call(
                "delete RoleBinding", self.kube.delete(_ROLE_BINDINGS, ns, CLUSTER_ROLE)
            )
            await self._call("create RoleBinding", self.kube.create(_ROLE_BINDINGS, ns, desired))
        else:
            desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            await self._call("update RoleBinding", self.kube.replace(_ROLE_BINDINGS, ns, desired))
        return Step("rolebinding", "updated", CLUSTER_ROLE)

    async def _ensure_quota(self, tool: str) -> Step:
        desired = resource_quota(tool, self.settings.quota)
        hard = desired["spec"]["hard"]
        return await self._converge(
            "resourcequota",
            _QUOTAS,
            namespace_for(tool),
            desired,
            same=lambda current: ((current.get("spec") or {}).get("hard") or {}) == hard,
        )

    async def _ensure_limit_range(self, tool: str) -> Step:
        desired = limit_range(tool, self.settings.limit_range)
        limits = desired["spec"]["limits"]
        return await self._converge(
            "limitrange",
            _LIMIT_RANGES,
            namespace_for(tool),
            desired,
            same=lambda current: (current.get("spec") or {}).get("limits") == limits,
        )

    async def _ensure_pull_secret(self, tool: str, pull: RegistryPull) -> Step:
        """The image pull Secret of build service images (``AdminSettings.registry_pull``)."""
        desired = registry_pull_secret(
            tool, pull.secret_name, pull.address, pull.username, pull.password.get_secret_value()
        )
        return await self._converge(
            "pullsecret",
            _SECRETS,
            namespace_for(tool),
            desired,
            same=lambda current: (
                current.get("data") == desired["data"] and current.get("type") == desired["type"]
            ),
        )

    async def _converge(
        self,
        step: str,
        res: Resource,
        namespace: str | None,
        desired: Obj,
        *,
        same: Callable[[Obj], bool],
    ) -> Step:
        """Create ``desired`` if absent; replace it if ``same(current)`` is false; else nothing.

        The replace carries the current resourceVersion, so a concurrent change gives a 409
        instead of being overwritten.
        """
        kind, name = desired["kind"], desired["metadata"]["name"]
        current = await self._call(f"read {kind}", self.kube.get(res, namespace, name))
        if current is None:
            await self._call(f"create {kind}", self.kube.create(res, namespace, desired))
            return Step(step, "created", name)
        if same(current):
            return Step(step, "unchanged", name)
        desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        await self._call(f"update {kind}", self.kube.replace(res, namespace, desired))
        return Step(step, "updated", name)

    def _ensure_home(self, tool: str, uid: int) -> Step:
        """The home and its credential directories, owned by the tool's uid."""
        home = self.home(tool)
        created = not home.is_dir()
        changed = False
        home.parent.mkdir(parents=True, exist_ok=True)
        for path, mode in ((home, 0o750), (home / ".toolskube", 0o700), (home / ".kube", 0o700)):
            if not path.is_dir():
                path.mkdir(mode=mode)
                changed = True
            st = path.stat()
            if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, uid, mode):
                os.chown(path, uid, uid)
                os.chmod(path, mode)
                changed = True
        action: Action = "created" if created else "updated" if changed else "unchanged"
        return Step("home", action, str(home))

    def _certificate_ok(self, tool: str) -> tuple[bool, str]:
        try:
            cert = pki.load_cert(self.cert_path(tool))
            key = pki.load_key(self.key_path(tool))
        except pki.PKIError:
            return False, "no certificate yet"
        if not pki.key_matches(cert, key):
            return False, "certificate does not match its key"
        if not pki.issued_by(cert, self._cluster_ca):
            return False, "certificate not issued by the cluster CA"
        if cert.subject != pki.subject(tool, ["toolforge"]):
            return False, f"unexpected subject {cert.subject.rfc4514_string()}"
        window = dt.timedelta(days=self.settings.renew_before_days)
        if pki.expires_within(cert, window):
            return False, f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
        return True, f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"

    async def _ensure_certificate(self, tool: str, uid: int, force: bool) -> Step:
        ok, why = self._certificate_ok(tool)
        if ok and not force:
            return Step("certificate", "unchanged", why)
        existed = self.cert_path(tool).exists()
        key = pki.generate_key()
        cert = await self._sign_via_csr(tool, key)
        # Key first, then certificate: a crash in between leaves a mismatch, which the next
        # run detects and repairs.
        pki.write_key(self.key_path(tool), key)
        pki.write_cert(self.cert_path(tool), cert)
        for path in (self.key_path(tool), self.cert_path(tool)):
            os.chown(path, uid, uid)
        detail = f"CN={tool},O=toolforge valid until {cert.not_valid_after_utc:%Y-%m-%d}"
        return Step("certificate", "updated" if existed else "created", f"{detail} ({why})")

    async def _sign_via_csr(self, tool: str, key: pki.PrivateKey) -> x509.Certificate:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(pki.subject(tool, ["toolforge"]))
            .sign(key, hashes.SHA256())
        )
        name = csr_name(tool)
        body = csr_object(
            tool,
            csr.public_bytes(Encoding.PEM),
            expiration_seconds=self.settings.cert_days * 86400,
        )
        await self._delete_csr(tool)
        await self._call("create CertificateSigningRequest", self.kube.create(_CSRS, None, body))
        try:
            created = await self._call(
                "read CertificateSigningRequest", self.kube.get(_CSRS, None, name)
            )
            if created is None:
                raise OnboardingError(f"CSR {name} disappeared before it was approved")
            await self._call(
                "approve CertificateSigningRequest",
                self.kube.request(
                    "PUT",
                    _CSRS.item(None, name) + "/approval",
                    label="certificatesigningrequests/approval",
                    body=csr_approval(created, tool),
                ),
            )
            cert = await self._signed_certificate(name)
        finally:
            await self._delete_csr(tool)
        if not pki.key_matches(cert, key) or cert.subject != pki.subject(tool, ["toolforge"]):
            raise OnboardingError(f"CSR {name}: the signed certificate does not match the request")
        return cert

    async def _signed_certificate(self, name: str) -> x509.Certificate:
        """Wait (``csr_timeout_seconds``) until the approved CSR ``name`` carries its
        certificate."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.csr_timeout_seconds
        while True:
            current = await self._call(
                "read CertificateSigningRequest", self.kube.get(_CSRS, None, name)
            )
            status = (current or {}).get("status") or {}
            if status.get("certificate"):
                return x509.load_pem_x509_certificate(base64.b64decode(status["certificate"]))
            for cond in status.get("conditions") or []:
                if cond.get("type") in ("Denied", "Failed"):
                    raise OnboardingError(
                        f"CSR {name} {cond['type'].lower()}: "
                        f"{cond.get('message') or cond.get('reason')}"
                    )
            if loop.time() > deadline:
                raise OnboardingError(
                    f"CSR {name} was approved but not signed within "
                    f"{self.settings.csr_timeout_seconds:.0f} s: is the controller-manager "
                    "running with --cluster-signing-cert-file?"
                )
            await asyncio.sleep(0.2)

    async def _delete_csr(self, tool: str) -> bool:
        deleted = await self._call(
            "delete CertificateSigningRequest", self.kube.delete(_CSRS, None, csr_name(tool))
        )
        return deleted is not None

    def kubeconfig_text(self, tool: str) -> str:
        """The tool's ``~/.kube/config`` (:func:`toolforge_admin.objects.kubeconfig_document`)
        as YAML."""
        doc = kubeconfig_document(tool, server=self.cluster.server, ca_pem=self.cluster.ca_pem)
        return yaml.safe_dump(doc, sort_keys=False)

    def _ensure_kubeconfig(self, tool: str, uid: int) -> Step:
        path = self.kubeconfig_path(tool)
        text = self.kubeconfig_text(tool)
        try:
            if path.read_text() == text:
                return Step("kubeconfig", "unchanged", str(path))
            action: Action = "updated"
        except OSError:
            action = "created"
        tmp = path.with_name(".config.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(tmp, uid, uid)
        os.replace(tmp, path)
        return Step("kubeconfig", action, str(path))

    async def _wait_default_service_account(self, ns: str, timeout: float = 30.0) -> None:
        """Pods are refused until the controller-manager made ``default``; wait for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            account = await self._call(
                "read ServiceAccount", self.kube.get(_SERVICE_ACCOUNTS, ns, "default")
            )
            if account is not None:
                return
            await asyncio.sleep(0.2)
        raise OnboardingError(f"ServiceAccount default did not appear in {ns} in {timeout} s")

    # ----- renew, list, delete ----------------------------------------------------------------

    async def renew(self, tool: str, force: bool = False) -> ToolResult:
        """Re-issue the tool's certificate if it expires soon (or always, with ``force``)."""
        validate_tool_name(tool)
        info = await self._info(tool)
        if info is None or info.uid is None:
            raise OnboardingError(f"tool {tool!r} is not onboarded")
        result = ToolResult(tool=tool, namespace=info.namespace, uid=info.uid, home=self.home(tool))
        result.steps.append(await self._ensure_certificate(tool, info.uid, force=force))
        return result

    async def list(self) -> list[ToolInfo]:
        """Every onboarded tool, sorted by name."""
        infos = (self._to_info(ns) for ns in await self._tool_namespaces())
        return sorted(infos, key=lambda t: t.tool)

    async def _tool_namespaces(self) -> _Objs:
        """Every namespace labelled as a tool's."""
        items, _ = await self._call(
            "list namespaces", self.kube.list(_NAMESPACES, None, label_selector=TOOL_LABEL)
        )
        return items

    async def _info(self, tool: str) -> ToolInfo | None:
        found = await self._call(
            "read namespace", self.kube.get(_NAMESPACES, None, namespace_for(tool))
        )
        return None if found is None else self._to_info(found)

    def _to_info(self, ns: Obj) -> ToolInfo:
        meta = ns.get("metadata") or {}
        tool = (meta.get("labels") or {}).get(TOOL_LABEL, meta.get("name", ""))
        expires = None
        with contextlib.suppress(pki.PKIError):
            expires = pki.load_cert(self.cert_path(tool)).not_valid_after_utc
        return ToolInfo(
            tool=tool,
            namespace=meta.get("name", ""),
            uid=_uid_of(ns),
            phase=(ns.get("status") or {}).get("phase") or "Unknown",
            cert_expires=expires,
        )

    async def delete(self, tool: str, purge_home: bool = False) -> ToolResult:
        """Remove the tool's namespace (and with it every object in it), its pending CSR and
        its credentials. The home's data stays unless ``purge_home``."""
        validate_tool_name(tool)
        ns = namespace_for(tool)
        info = await self._info(tool)
        result = ToolResult(
            tool=tool, namespace=ns, uid=info.uid if info else None, home=self.home(tool)
        )
        gone = await self._call("delete namespace", self.kube.delete(_NAMESPACES, None, ns))
        result.steps.append(Step("namespace", "absent" if gone is None else "deleted", ns))
        deleted = await self._delete_csr(tool)
        result.steps.append(Step("csr", "deleted" if deleted else "absent"))
        home = self.home(tool)
        if purge_home:
            existed = home.exists()
            shutil.rmtree(home, ignore_errors=True)
            result.steps.append(Step("home", "deleted" if existed else "absent", str(home)))
        else:
            removed = False
            for path in (self.key_path(tool), self.cert_path(tool), self.kubeconfig_path(tool)):
                if path.exists():
                    path.unlink()
                    removed = True
            result.steps.append(Step("credentials", "deleted" if removed else "absent"))
        return result

    # ----- helpers ----------------------------------------------------------------------------

    @staticmethod
    async def _call(what: str, call: Awaitable[T]) -> T:
        """Await one cluster call; its error becomes :class:`OnboardingError` naming ``what``."""
        try:
            return await call
        except APIError as exc:
            raise OnboardingError(f"{what} failed ({exc.status_code}): {exc.message}") from exc


def _same_spec(desired: Obj) -> Callable[[Obj], bool]:
    """Whether the current object's ``spec`` has every value of ``desired``'s."""
    return lambda current: contains(current.get("spec"), desired["spec"])


def _uid_of(namespace: Obj) -> int | None:
    """The uid recorded in a tool namespace's ``toolforge.org/uid`` annotation, if any."""
    text = ((namespace.get("metadata") or {}).get("annotations") or {}).get(UID_ANNOTATION, "")
    return int(text) if text.isdigit() else None

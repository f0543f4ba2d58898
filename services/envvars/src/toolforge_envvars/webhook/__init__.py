"""The envvars admission webhook: adds a tool's variables to its pods (a mutating admission
webhook, Kubernetes "Dynamic Admission Control", AdmissionReview ``admission.k8s.io/v1``)."""

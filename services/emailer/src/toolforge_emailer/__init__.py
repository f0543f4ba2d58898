"""The Toolforge jobs emailer: watches the pods of tools' jobs and mails each tool's
maintainers what happened to the jobs that asked for it (``emails: onfailure|onfinish|all``),
batched per tool, through SMTP. See ``services/emailer/README.md``."""

"""The local stack's logger name."""

# Not "imagegen.local": Powertools' Logger(service="imagegen") owns the "imagegen" logger, and its
# handler would format these lines as if they came from the last function that ran.
LOGGER_NAME = "imagegen-local"

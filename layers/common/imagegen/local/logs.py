"""The local stack's logger name."""

# Without "imagegen" in it: Powertools' Logger(service="imagegen") owns the "imagegen" logger, and it puts a
# filter on the root logger's handlers that drops every record whose logger name contains "imagegen".
LOGGER_NAME = "local-stack"

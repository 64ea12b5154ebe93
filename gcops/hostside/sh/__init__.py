"""Host scripts (data): static POSIX sh files run on registry hosts; see gcops.hostside.scripts."""

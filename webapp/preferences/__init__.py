"""Who is told through which channel, and when: per-type channel preferences, per-event mutes,
quiet hours."""

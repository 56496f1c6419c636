"""Who is on call: layered schedules, shift notices."""

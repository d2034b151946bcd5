"""The enrollments service: students enrolled in published courses."""

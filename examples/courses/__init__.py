"""The courses service: courses, their modules and lessons, and publishing."""

"""The grading service: submissions of enrolled students and their grades."""

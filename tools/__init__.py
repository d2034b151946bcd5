"""Development tools of the lms-shared repository; not part of the ``lms_shared`` wheel."""

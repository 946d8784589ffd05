"""The course's tooling for maintainers and instructors: the `course` command, the notebook builder, the runner
and prefetch. Lessons never import it; it may import `course_utils`, never the reverse.
"""

__all__ = ["cli", "notebooks", "prefetch", "runner"]

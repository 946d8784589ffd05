"""The "Open in Colab" and "Open in Kaggle" badges of each notebook, pointing at the course's repository.

``course build`` writes the markdown cell tagged :data:`BADGES_TAG` of every notebook with
:func:`badges_markdown`; the address comes from :func:`course_tools.repository.repository_url`.
"""

from __future__ import annotations

from course_tools.repository import checked_repository_url, repository_url

__all__ = ["BADGES_TAG", "BRANCH", "badges_markdown", "notebook_url"]

#: Branch the badges open.
BRANCH = "main"
#: Tag of the markdown cell that ``course build`` rewrites with the badges.
BADGES_TAG = "badges"


def _owner_and_name(repository: str | None) -> str:
    """``owner/name`` of a GitHub repository address (default: :func:`repository_url`)."""
    url = checked_repository_url(repository) if repository is not None else repository_url()
    return url.removeprefix("https://github.com/")


def notebook_url(lesson: str, repository: str | None = None) -> str:
    """The GitHub address of a lesson's student notebook."""
    return f"https://github.com/{_owner_and_name(repository)}/blob/{BRANCH}/notebooks/{lesson}.ipynb"


def badges_markdown(lesson: str, repository: str | None = None) -> str:
    """Markdown for the "Open in Colab" and "Open in Kaggle" badges of a lesson's student notebook."""
    colab = (f"https://colab.research.google.com/github/{_owner_and_name(repository)}/blob/{BRANCH}/notebooks/"
             f"{lesson}.ipynb")
    kaggle = f"https://kaggle.com/kernels/welcome?src={notebook_url(lesson, repository)}"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
        f"[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})"
    )

"""What the dataset commands share: the member they act as.

The import and merge write annotations through the services, which act for a member of the
organisation. A command names one with ``--user`` (a manager or owner of the project's
organisation); without it, it acts as the organisation's first owner."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.http import Http404

from annotation.models import Project
from platform_core.models import Membership, Role
from platform_core.tenancy import Tenant, resolve_tenant


def command_project(project_id: int) -> Project:
    # A command acts for whoever runs it on the server: the project is looked up by its id alone;
    # everything it reads and writes is then scoped to that project.
    try:
        return Project.objects.select_related("organization").get(pk=project_id)
    except Project.DoesNotExist:
        raise CommandError(f"No project with id {project_id}.") from None


def command_tenant(project: Project, username: str | None) -> tuple[Tenant, object]:
    """``(tenant, user)`` the command acts as."""
    org = project.organization
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
    else:
        owner = Membership.objects.for_org(org).filter(role=Role.OWNER).select_related("user").order_by("pk").first()
        if owner is None:
            raise CommandError(f"The organisation {org.name!r} has no owner: name a manager with --user.")
        user = owner.user
    try:
        tenant = resolve_tenant(user, org.slug)
    except Http404:
        raise CommandError(f"{user.get_username()!r} is not a member of {org.name!r}.") from None
    if not tenant.can_manage:
        raise CommandError(f"{user.get_username()!r} is not a manager or owner of {org.name!r}.")
    return tenant, user

#!/usr/bin/env bash
# The API suite's route modules once more, every clinic they register on the
# shared tier (`DEFAULT_TIER=shared`): each route of the API, served through
# a pod's connections in a clinic's schema and role. Modules about the
# dedicated tier's own machinery (its databases and login roles, backups and
# restores of a database, server moves, the connection budget per clinic
# database) stay with the first run; `shared_tier::` has the shared tier's own
# isolation and operations tests. A few tests of the route modules look at a
# clinic database by name and are skipped here, each for the reason given.
set -euo pipefail
cd "$(dirname "$0")/.."
skips=(
  # counts clinic databases on the server (a shared clinic has a schema)
  --skip auth::racing_registrations_for_one_email_leave_one_clinic
  # scans a clinic database's files for a name
  --skip compliance::erasure_waits_for_retention_then_leaves_no_trace_of_the_name
  # reads a clinic database's size (a schema's is not reported yet)
  --skip compliance::platform_admins_suspend_clinics_and_read_no_patient_data
  # logs in as the dedicated clinic's login role
  --skip compliance::the_clinic_role_cannot_alter_its_trail
  # checks that the dedicated clinic's database stays open
  --skip cli::clinic_delete_refuses_a_clinic_with_a_patient
  # counts function calls in the clinic database's statistics
  --skip read_trail::concurrent_reads_share_commits_and_each_is_recorded
  # a placement notice closes a dedicated clinic's own connections (a
  # shared clinic's are its pod's: the notice only drops its route)
  --skip coherence::a_placement_notice_closes_the_clinics_connections_on_every_instance
  # counts one connection registry entry per clinic (a pod is one entry)
  --skip metrics::metrics_count_requests_by_route_template_and_never_by_id
)
DEFAULT_TIER=shared cargo test --locked --test api -- \
  patients:: appointments:: practitioners:: catalogue:: consents:: documents:: \
  medical_records:: settings:: users:: roles:: registration:: accounts:: \
  platform_admin:: open_internet:: proxies:: web:: hostile:: openapi:: auth:: \
  bounds:: compliance:: read_trail:: failed_writes:: metrics:: shared_tier:: \
  cli:: safe_backups:: audit_restores:: coherence:: \
  offboarding::an_exported_clinic_reads_back_without_medicalpro \
  "${skips[@]}"

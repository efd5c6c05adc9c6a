"""The job worker (`cli.py worker`): scheduled jobs without cron, guarded so that any number of
worker instances run each job once (claims), the job list (schedule) and the loop (runner)."""

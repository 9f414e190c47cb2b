"""Foreign tables for the issue-10 benchmark (``bench/analytics.py --parts foreign``).

Each family adds ``bench/foreign/<family>.py`` with::

    CASES = [dict(key="sim_farm_kmeans",             # catalogue key
                  table="Orange churn, numeric usage columns (not the model's demo data)",
                  load=lambda: pandas.DataFrame(...), # -> the table, read from ../shared (no downloads)
                  params={"features": [...]})]        # the role bindings a user would pass

The benchmark runs every case through the catalogue (``evaluate`` on the table, the same
call the runner makes) and reports the primary metric against the entry's baseline. The
point is a table the entry was *not* written for: other column names, other data.
"""

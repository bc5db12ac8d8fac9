-- cht-couch2pg's refresh_matviews(), which deployments call from their own scripts: refreshes
-- every materialized view of the database, each one after the materialized views it reads
-- (directly or through plain views: the dependencies of their rewrite rules in pg_depend), and
-- returns how many it refreshed. The pipeline builds no materialized view (its objects are views
-- and tables it maintains itself), so every one is the deployment's. CONCURRENTLY when one has a
-- unique index on plain columns, so that readers keep reading meanwhile. Unlike cht-couch2pg's,
-- one that fails undoes nothing else: a WARNING names it, and what reads it is skipped (stale
-- input), also with a WARNING.
CREATE OR REPLACE FUNCTION public.refresh_matviews()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  matview record;
  not_refreshed oid[] := '{}';
  refreshed integer := 0;
  started timestamptz;
BEGIN
  FOR matview IN
    WITH RECURSIVE
    matviews AS (
      SELECT
        c.oid,
        c.relispopulated AS populated,
        EXISTS (
          SELECT 1 FROM pg_index AS i
          WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
            AND i.indpred IS NULL AND i.indexprs IS NULL
        ) AS concurrently
      FROM pg_class AS c
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ),
    reads AS (  -- a view or materialized view, and a relation its query reads
      SELECT DISTINCT r.ev_class AS reader, d.refobjid AS relation
      FROM pg_rewrite AS r
      JOIN pg_depend AS d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
      WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
    ),
    reach (matview, relation) AS (  -- through plain views, up to the next materialized views
      SELECT m.oid, r.relation FROM matviews AS m JOIN reads AS r ON r.reader = m.oid
      UNION
      SELECT reach.matview, r.relation
      FROM reach JOIN reads AS r ON r.reader = reach.relation
      WHERE reach.relation NOT IN (SELECT oid FROM matviews)
    ),
    upstream AS (
      SELECT reach.matview, reach.relation AS upstream
      FROM reach WHERE reach.relation IN (SELECT oid FROM matviews)
    ),
    depth (matview, depth) AS (  -- the longest chain of materialized views under each
      SELECT oid, 0 FROM matviews
      UNION
      SELECT u.matview, d.depth + 1 FROM depth AS d JOIN upstream AS u ON u.upstream = d.matview
    )
    SELECT
      m.oid,
      m.oid::regclass AS name,
      m.populated,
      m.concurrently,
      ARRAY(SELECT u.upstream FROM upstream AS u WHERE u.matview = m.oid) AS upstream
    FROM matviews AS m
    JOIN (SELECT d.matview, max(d.depth) AS depth FROM depth AS d GROUP BY d.matview) AS l ON l.matview = m.oid
    ORDER BY l.depth, m.oid::regclass::text
  LOOP
    IF matview.upstream && not_refreshed THEN
      not_refreshed := not_refreshed || matview.oid;
      RAISE WARNING 'refresh_matviews: % skipped: a materialized view it reads was not refreshed', matview.name;
      CONTINUE;
    END IF;
    started := clock_timestamp();
    BEGIN
      IF matview.populated AND matview.concurrently THEN
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', matview.name);
      ELSE
        EXECUTE format('REFRESH MATERIALIZED VIEW %s', matview.name);
      END IF;
      refreshed := refreshed + 1;
      RAISE NOTICE 'refresh_matviews: % refreshed in %', matview.name, clock_timestamp() - started;
    EXCEPTION WHEN others THEN
      not_refreshed := not_refreshed || matview.oid;
      RAISE WARNING 'refresh_matviews: % failed: %', matview.name, SQLERRM;
    END;
  END LOOP;
  RETURN refreshed;
END
$$;

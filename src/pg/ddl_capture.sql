-- lethe's DDL capture (src/pg/ddl_capture.rs): two event triggers that put
-- every DDL command of this database into the logical stream, at its place
-- in its transaction, as pg_logical_emit_message(true, 'lethe.ddl', json):
--   {"v":1, "event":"end"|"drop", "tag":…, "type":…, "identity":…,
--    "change":"replay"|"unreplayable"|"other", "sql":…}
-- "replay": an index, trigger, view or function created or dropped; "sql"
-- rebuilds it exactly (PostgreSQL's own pg_get_*def, names qualified) and a
-- restore runs it after post-data. "unreplayable": another change to such an
-- object (ALTER … RENAME, say): the capture takes a new base. "other":
-- tables, columns, keys, types…, which the schema digest judges as before.
-- Installed by the capture when its role is a superuser; removed by
-- `lethe continuous disable`. Never in a base: pg_dump runs with
-- --exclude-schema=lethe and the triggers are cut from post-data. The
-- schema's comment, which marks it as lethe's, is set by install() from
-- ddl_capture.rs's MARK (one spelling for the mark and its check).
CREATE SCHEMA IF NOT EXISTS lethe;

CREATE OR REPLACE FUNCTION lethe.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $lethe$
DECLARE
  r record;
  change text;
  stmt text;
BEGIN
  -- A copy of this database (a pg_dump of it loaded elsewhere) carries the
  -- triggers; where nothing can decode the stream they do nothing.
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    CONTINUE WHEN r.in_extension OR r.schema_name = 'lethe' OR r.schema_name LIKE 'pg\_temp%'
               OR (r.object_type = 'schema' AND r.object_identity = 'lethe');
    change := 'other';
    stmt := NULL;
    IF r.object_type IN ('index', 'trigger', 'view', 'function', 'procedure') THEN
      IF r.command_tag = 'CREATE INDEX' AND r.object_type = 'index' THEN
        -- An index a constraint owns, or a partition's copy of its parent's,
        -- comes with the command that made its owner.
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = r.objid)
                   OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = r.objid);
        change := 'replay';
        -- A partitioned table's index reads `ON ONLY`, which would leave the
        -- partitions without theirs: replayed without it, as it was made.
        SELECT CASE WHEN c.relkind = 'I' THEN replace(pg_get_indexdef(c.oid), ' ON ONLY ', ' ON ')
                    ELSE pg_get_indexdef(c.oid) END
               || coalesce(' TABLESPACE ' || quote_ident(t.spcname), '')
          INTO stmt FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
         WHERE c.oid = r.objid;
      ELSIF r.command_tag = 'CREATE TRIGGER' AND r.object_type = 'trigger' THEN
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_trigger WHERE oid = r.objid AND (tgisinternal OR tgparentid <> 0));
        change := 'replay';
        stmt := pg_get_triggerdef(r.objid);
      ELSIF r.command_tag = 'CREATE VIEW' AND r.object_type = 'view' THEN
        change := 'replay';
        SELECT 'CREATE OR REPLACE VIEW ' || r.object_identity
               || coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '')
               || ' AS ' || rtrim(pg_get_viewdef(c.oid), ';')
          INTO stmt FROM pg_class c WHERE c.oid = r.objid;
      ELSIF r.command_tag IN ('CREATE FUNCTION', 'CREATE PROCEDURE')
            AND EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.objid AND prokind IN ('f', 'p')) THEN
        change := 'replay';
        stmt := pg_get_functiondef(r.objid);
      ELSIF r.command_tag NOT IN ('COMMENT', 'GRANT', 'REVOKE', 'SECURITY LABEL', 'REINDEX') THEN
        change := 'unreplayable';
      END IF;
    END IF;
    PERFORM pg_logical_emit_message(true, 'lethe.ddl', json_build_object(
      'v', 1, 'event', 'end', 'tag', r.command_tag, 'type', r.object_type,
      'identity', r.object_identity, 'change', change, 'sql', stmt)::text);
  END LOOP;
END
$lethe$;

CREATE OR REPLACE FUNCTION lethe.capture_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $lethe$
DECLARE
  r record;
  neutral boolean;
  stmt text;
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  -- A drop that takes only indexes, triggers, views and functions is
  -- replayed (each object named by the command, CASCADE: what it took on
  -- the source it takes in the restore). One that takes anything else
  -- (a table, a column's default, a constraint…) is the digest's to judge.
  -- A view takes its row types and its `_RETURN` rule with it.
  WITH d AS (SELECT * FROM pg_event_trigger_dropped_objects() o
              WHERE NOT o.is_temporary AND o.schema_name IS DISTINCT FROM 'lethe'),
       views AS (SELECT object_identity FROM d WHERE object_type = 'view')
  SELECT coalesce(bool_and(d.object_type IN ('index', 'trigger', 'view', 'function', 'procedure')
           OR (d.object_type = 'type' AND rtrim(d.object_identity, '[]') IN (SELECT * FROM views))
           OR (d.object_type = 'rule' AND d.object_identity IN (SELECT '"_RETURN" on ' || v.object_identity FROM views v))),
         false)
    INTO neutral FROM d;
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() o
            WHERE o.original AND NOT o.is_temporary AND o.schema_name IS DISTINCT FROM 'lethe' LOOP
    stmt := NULL;
    IF neutral THEN
      stmt := CASE r.object_type
        WHEN 'index' THEN 'DROP INDEX IF EXISTS ' || r.object_identity || ' CASCADE'
        WHEN 'view' THEN 'DROP VIEW IF EXISTS ' || r.object_identity || ' CASCADE'
        WHEN 'function' THEN 'DROP FUNCTION IF EXISTS ' || r.object_identity || ' CASCADE'
        WHEN 'procedure' THEN 'DROP PROCEDURE IF EXISTS ' || r.object_identity || ' CASCADE'
        WHEN 'trigger' THEN format('DROP TRIGGER IF EXISTS %I ON %I.%I CASCADE',
          r.address_names[3], r.address_names[1], r.address_names[2])
      END;
    END IF;
    PERFORM pg_logical_emit_message(true, 'lethe.ddl', json_build_object(
      'v', 1, 'event', 'drop', 'tag', tg_tag, 'type', r.object_type,
      'identity', r.object_identity,
      'change', CASE WHEN stmt IS NULL THEN 'other' ELSE 'replay' END, 'sql', stmt)::text);
  END LOOP;
END
$lethe$;

DO $lethe$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'lethe_ddl_end') THEN
    CREATE EVENT TRIGGER lethe_ddl_end ON ddl_command_end EXECUTE FUNCTION lethe.capture_ddl();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'lethe_sql_drop') THEN
    CREATE EVENT TRIGGER lethe_sql_drop ON sql_drop EXECUTE FUNCTION lethe.capture_drop();
  END IF;
  ALTER EVENT TRIGGER lethe_ddl_end ENABLE ALWAYS;
  ALTER EVENT TRIGGER lethe_sql_drop ENABLE ALWAYS;
END
$lethe$;

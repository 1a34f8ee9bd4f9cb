-- lethe's DDL capture (src/pg/ddl_capture.rs): event triggers that put
-- every DDL command of this database into the logical stream, at its place
-- in its transaction, as pg_logical_emit_message(true, 'lethe.ddl', json):
--   {"v":1, "event":"end"|"drop", "tag":…, "type":…, "identity":…,
--    "change":"replay"|"unreplayable"|"other", "sql":…}
-- "replay": an index, trigger, view or function created or dropped; "sql"
-- rebuilds it exactly (PostgreSQL's own pg_get_*def, names qualified) and a
-- restore runs it after post-data. "add_columns": an ALTER TABLE that only
-- appended columns to a plain keyed table, without rewriting it or touching
-- anything else (lethe_ddl_start keeps each table's shape as the command
-- starts, to compare): the message also carries the table, its oid, the new
-- columns with the value rows stored before the command read in them
-- (attmissingval), and what they add to the schema digest; a restore adds
-- them after pre-data. "unreplayable": another change to an index, trigger,
-- view or function (ALTER … RENAME, say): the capture takes a new base.
-- "other": tables, columns, keys, types…: a new base too.
-- Installed by the capture when its role is a superuser; removed by
-- `lethe continuous disable`. Never in a base: pg_dump runs with
-- --exclude-schema=lethe and the triggers are cut from post-data. The
-- schema's comment, which marks it as lethe's, is set by install() from
-- ddl_capture.rs's MARK (one spelling for the mark and its check).
CREATE SCHEMA IF NOT EXISTS lethe;

-- A table's shape up to column `upto`: everything an ALTER TABLE can change
-- but appending a column (its storage included, so a rewrite shows), as the
-- catalog's own rows (no deparsing: this runs for every table as each ALTER
-- TABLE starts), hashed.
CREATE OR REPLACE FUNCTION lethe.table_shape(rel oid, upto int) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lethe$
  SELECT md5(concat_ws('|', c.relkind, c.relfilenode, c.relowner, c.relacl::text, c.reloptions::text,
    c.relreplident, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence, c.reltablespace,
    c.relispartition, c.reloftype, c.relam, c.relname, c.relnamespace, c.relpartbound::text,
    (SELECT string_agg(a::text, ',' ORDER BY a.attnum) FROM pg_attribute a
      WHERE a.attrelid = rel AND a.attnum > 0 AND a.attnum <= upto),
    (SELECT string_agg(d::text, ',' ORDER BY d.adnum) FROM pg_attrdef d WHERE d.adrelid = rel AND d.adnum <= upto),
    (SELECT string_agg(k::text, ',' ORDER BY k.oid) FROM pg_constraint k WHERE k.conrelid = rel),
    (SELECT string_agg(i::text, ',' ORDER BY i.indexrelid) FROM pg_index i WHERE i.indrelid = rel),
    (SELECT string_agg(t::text, ',' ORDER BY t.oid) FROM pg_trigger t WHERE t.tgrelid = rel),
    (SELECT string_agg(w::text, ',' ORDER BY w.oid) FROM pg_rewrite w WHERE w.ev_class = rel),
    (SELECT string_agg(p::text, ',' ORDER BY p.oid) FROM pg_policy p WHERE p.polrelid = rel),
    (SELECT string_agg(h::text, ',' ORDER BY h.inhrelid, h.inhparent) FROM pg_inherits h
      WHERE h.inhrelid = rel OR h.inhparent = rel)))
  FROM pg_class c WHERE c.oid = rel
$lethe$;

-- A table's names, for messages.
CREATE OR REPLACE FUNCTION lethe.table_name(rel oid) RETURNS json
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lethe$
  SELECT json_build_object('schema', n.nspname, 'name', c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$lethe$;

-- The columns of `rel` past `upto`, as `add_columns` carries them: `missing`
-- is the value rows stored before read in them (attmissingval).
CREATE OR REPLACE FUNCTION lethe.added_columns(rel oid, upto int) RETURNS json
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lethe$
  SELECT json_agg(json_build_object(
           'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
           'type_oid', a.atttypid::bigint, 'typmod', a.atttypmod, 'not_null', a.attnotnull,
           'default', pg_get_expr(d.adbin, d.adrelid),
           'base_type', (WITH RECURSIVE b(oid, mod, depth) AS (
               SELECT a.atttypid, a.atttypmod, 0
               UNION ALL SELECT ty.typbasetype, ty.typtypmod, b.depth + 1
                 FROM b JOIN pg_type ty ON ty.oid = b.oid WHERE ty.typtype = 'd')
             SELECT format_type(b.oid, b.mod) FROM b ORDER BY b.depth DESC LIMIT 1),
           'nondeterministic', coalesce(NOT co.collisdeterministic, false),
           'missing', CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END)
           ORDER BY a.attnum)
    FROM pg_attribute a
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
   WHERE a.attrelid = rel AND a.attnum > upto AND NOT a.attisdropped
$lethe$;

-- The statement that adds them again: `ALTER TABLE ONLY` a plain table, or
-- a partitioned one (which adds them to its partitions).
CREATE OR REPLACE FUNCTION lethe.added_sql(rel oid, upto int, ident text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lethe$
  SELECT 'ALTER TABLE ' || CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END || ident || ' '
         || string_agg('ADD COLUMN ' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
              || CASE WHEN a.attcollation <> t.typcollation
                      THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) ELSE '' END
              || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
              || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END, ', ' ORDER BY a.attnum)
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
   WHERE c.oid = rel AND a.attnum > upto AND NOT a.attisdropped
   GROUP BY c.relkind
$lethe$;

-- What `rel`'s columns past `upto` add to the schema digest (not yet
-- reduced mod 2^64): their `col` lines, rendered and hashed as
-- schema_digest.sql renders and hashes its lines.
CREATE OR REPLACE FUNCTION lethe.added_digest(rel oid, upto int) RETURNS numeric
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lethe$
  SELECT coalesce(sum(('x' || substr(md5(
           'col ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || a.attnum || ' ' || quote_ident(a.attname) || ' '
           || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
           || a.attidentity::text || a.attgenerated::text || ' ' || coalesce(co.collname, '') || ' '
           || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
         ), 1, 16))::bit(64)::bigint::numeric), 0)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE a.attrelid = rel AND a.attnum > upto AND NOT a.attisdropped
$lethe$;

-- As an ALTER TABLE starts: every plain table's column count and shape, for
-- capture_ddl to compare with when it ends (a setting of this transaction).
CREATE OR REPLACE FUNCTION lethe.capture_start() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $lethe$
BEGIN
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  PERFORM set_config('lethe.before', coalesce((
    SELECT json_object_agg(c.oid, json_build_array(c.relnatts, lethe.table_shape(c.oid, c.relnatts)))
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'lethe')
       AND n.nspname !~ '^pg_(toast|temp_)'), '{}')::text, true);
END
$lethe$;

CREATE OR REPLACE FUNCTION lethe.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET DateStyle = ISO SET IntervalStyle = postgres
SET extra_float_digits = 3 AS $lethe$
DECLARE
  r record;
  change text;
  stmt text;
  before json;
  natts int;
  added json;
  table_name json;
  digest_delta text;
  befores json;
  kind "char";
  rels oid[];
  rel oid;
  ok boolean;
  parts json;
BEGIN
  -- A copy of this database (a pg_dump of it loaded elsewhere) carries the
  -- triggers; where nothing can decode the stream they do nothing.
  IF current_setting('wal_level') <> 'logical' THEN RETURN; END IF;
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    CONTINUE WHEN r.in_extension OR r.schema_name = 'lethe' OR r.schema_name LIKE 'pg\_temp%'
               OR (r.object_type = 'schema' AND r.object_identity = 'lethe');
    change := 'other';
    stmt := NULL;
    added := NULL;
    table_name := NULL;
    parts := NULL;
    IF r.command_tag = 'ALTER TABLE' AND r.object_type = 'table' THEN
      -- Columns appended, and nothing else changed, on a keyed plain table
      -- with no generated column, parent or child, or on a partitioned
      -- table with a primary key whose partitions are all such tables: none
      -- rewritten. The command reached the table and its partitions.
      befores := current_setting('lethe.before', true)::json;
      SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = r.objid;
      rels := ARRAY[r.objid] || CASE WHEN kind = 'p'
        THEN ARRAY(SELECT h.inhrelid FROM pg_inherits h WHERE h.inhparent = r.objid ORDER BY h.inhrelid)
        ELSE '{}'::oid[] END;
      ok := befores IS NOT NULL AND kind IN ('r', 'p')
        AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = r.objid)
        AND (kind = 'r' OR (cardinality(rels) > 1
             AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.objid AND i.indisprimary)));
      IF ok THEN
        FOREACH rel IN ARRAY rels LOOP
          natts := (befores -> rel::text ->> 0)::int;
          ok := natts IS NOT NULL
            AND lethe.table_shape(rel, natts) = befores -> rel::text ->> 1
            AND ((rel = r.objid AND kind = 'p')
                 OR (EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = rel AND c.relkind = 'r' AND c.relreplident IN ('d', 'i'))
                     AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND (i.indisprimary OR i.indisreplident))
                     AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = rel)
                     AND (rel = r.objid OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = rel AND c.relispartition))))
            AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0
                             AND (a.attgenerated <> '' OR (a.attnum > natts AND (a.attisdropped OR a.attidentity <> ''))))
            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > natts);
          EXIT WHEN NOT ok;
        END LOOP;
      END IF;
      IF ok THEN
        change := 'add_columns';
        natts := (befores -> r.objid::text ->> 0)::int;
        table_name := lethe.table_name(r.objid);
        added := lethe.added_columns(r.objid, natts);
        stmt := lethe.added_sql(r.objid, natts, r.object_identity);
        -- What the columns add to the schema digest (schema_digest.sql: the
        -- sum of its lines' hashes, mod 2^64), every table's included. The
        -- capture expects the digest it last read plus this, and nothing
        -- else.
        SELECT (((sum(lethe.added_digest(x, (befores -> x::text ->> 0)::int))
                 % 18446744073709551616) + 18446744073709551616) % 18446744073709551616)::text
          INTO digest_delta FROM unnest(rels) x;
        SELECT coalesce(json_agg(json_build_object('table', lethe.table_name(x), 'relid', x::bigint,
                 'columns', lethe.added_columns(x, (befores -> x::text ->> 0)::int)) ORDER BY x), '[]')
          INTO parts FROM unnest(rels[2:]) x;
      END IF;
    ELSIF r.object_type IN ('index', 'trigger', 'view', 'function', 'procedure') THEN
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
    IF change = 'add_columns' THEN
      PERFORM pg_logical_emit_message(true, 'lethe.ddl', json_build_object(
        'v', 1, 'event', 'end', 'tag', r.command_tag, 'type', r.object_type,
        'identity', r.object_identity, 'change', change, 'sql', stmt,
        'table', table_name, 'relid', r.objid::bigint, 'columns', added,
        'partitions', parts, 'digest_delta', digest_delta)::text);
    ELSE
      PERFORM pg_logical_emit_message(true, 'lethe.ddl', json_build_object(
        'v', 1, 'event', 'end', 'tag', r.command_tag, 'type', r.object_type,
        'identity', r.object_identity, 'change', change, 'sql', stmt)::text);
    END IF;
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
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'lethe_ddl_start') THEN
    CREATE EVENT TRIGGER lethe_ddl_start ON ddl_command_start WHEN TAG IN ('ALTER TABLE')
      EXECUTE FUNCTION lethe.capture_start();
  END IF;
  ALTER EVENT TRIGGER lethe_ddl_start ENABLE ALWAYS;
  ALTER EVENT TRIGGER lethe_ddl_end ENABLE ALWAYS;
  ALTER EVENT TRIGGER lethe_sql_drop ENABLE ALWAYS;
END
$lethe$;

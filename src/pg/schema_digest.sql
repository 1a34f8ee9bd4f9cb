-- The source's schema digest: see src/pg/digest.rs.
WITH cap AS (SELECT count(*) = 3 AS captured FROM pg_event_trigger
  WHERE evtname IN ('lethe_ddl_end', 'lethe_sql_drop', 'lethe_ddl_start') AND evtenabled::text = 'A'),
  rel AS (SELECT c.oid, c.relkind, c.relpersistence, c.relreplident, c.relrowsecurity,
  c.relforcerowsecurity, c.relpartbound, c.reloptions,
  quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND NOT (c.relkind = 'v' AND (SELECT captured FROM cap))),
  lines AS (
  SELECT 'rel ' || r.name || ' ' || r.relkind::text || r.relpersistence::text || r.relreplident::text
  || r.relrowsecurity::text || r.relforcerowsecurity::text
  || ' ' || coalesce(pg_get_expr(r.relpartbound, r.oid), '')
  || ' ' || CASE WHEN r.relkind::text = 'p' THEN coalesce(pg_get_partkeydef(r.oid), '') ELSE '' END
  || ' ' || coalesce(array_to_string(r.reloptions, ','), '') AS l FROM rel r
  UNION ALL
  SELECT 'col ' || r.name || ' ' || a.attnum || ' ' || quote_ident(a.attname) || ' '
  || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
  || a.attidentity::text || a.attgenerated::text || ' ' || coalesce(co.collname, '') || ' '
  || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
  FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  UNION ALL
  SELECT 'con ' || r.name || ' ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
  FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM rel r JOIN pg_index i ON i.indrelid = r.oid
  WHERE NOT (SELECT captured FROM cap) OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
  UNION ALL
  SELECT 'trg ' || pg_get_triggerdef(t.oid) FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid
  WHERE NOT t.tgisinternal AND NOT (SELECT captured FROM cap)
  UNION ALL
  SELECT 'view ' || r.name || ' ' || pg_get_viewdef(r.oid) FROM rel r WHERE r.relkind::text IN ('v', 'm')
  UNION ALL
  SELECT 'inh ' || r.name || ' ' || h.inhparent::regclass::text || ' ' || h.inhseqno FROM rel r
  JOIN pg_inherits h ON h.inhrelid = r.oid
  UNION ALL
  SELECT 'pol ' || r.name || ' ' || quote_ident(p.polname) || ' ' || p.polcmd::text || p.polpermissive::text
  || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '')
  || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
  FROM rel r JOIN pg_policy p ON p.polrelid = r.oid
  UNION ALL
  SELECT 'seq ' || r.name || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart || ' '
  || s.seqincrement || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' '
  || s.seqcycle::text FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
  UNION ALL
  SELECT 'type ' || format_type(t.oid, NULL) || ' ' || t.typtype::text || ' '
  || coalesce(format_type(NULLIF(t.typbasetype, 0), NULLIF(t.typtypmod, -1)), '') || ' '
  || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
  FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ' '
  || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ',' ORDER BY k.conname)
  FROM pg_constraint k WHERE k.contypid = t.oid), '')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE t.typtype::text IN ('e', 'd', 'r')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
  AND d.objid = t.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 'fn ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '('
  || pg_get_function_identity_arguments(p.oid) || ') ' || p.prokind::text || p.provolatile::text
  || p.prosecdef::text || ' ' || coalesce(pg_get_function_result(p.oid), '') || ' '
  || md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')) || ' '
  || coalesce(array_to_string(p.proconfig, ','), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'lethe') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
  AND d.objid = p.oid AND d.deptype = 'e')
  AND NOT (p.prokind::text IN ('f', 'p') AND (SELECT captured FROM cap))
  UNION ALL
  SELECT 'ext ' || quote_ident(x.extname) || ' ' || x.extversion FROM pg_extension x
  UNION ALL
  SELECT 'nsp ' || quote_ident(n.nspname) FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'lethe') AND n.nspname !~ '^pg_(toast|temp_)'
  UNION ALL
  SELECT 'ddl captured' FROM cap WHERE cap.captured)
  SELECT (((coalesce(sum(('x' || substr(md5(l), 1, 16))::bit(64)::bigint::numeric), 0)
  % 18446744073709551616) + 18446744073709551616) % 18446744073709551616)::text,
  (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
  EXISTS (SELECT pg_snapshot_xip(pg_current_snapshot())), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END FROM lines

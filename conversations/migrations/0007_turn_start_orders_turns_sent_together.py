# A later turn's messages are timed after the conversation's latest ones (its row locked), so
# turns sent together are listed in the order they are served in (conversations.services
# .turn_start; CONTRACT §9.2 orders messages by created_at, then id). The same signature: the
# function is replaced in place, and 0006's is restored backwards.

import importlib

from django.db import migrations

from conversations.migrations._operations import RunSQLOnPostgreSQL

PREVIOUS = importlib.import_module("conversations.migrations.0006_turn_start_checks_the_token")

TURN_START = """
CREATE OR REPLACE FUNCTION conversations_turn_start(
    p_user_id bigint,
    p_conversation_id uuid,
    p_new boolean,
    p_title varchar,
    p_text text,
    p_provider varchar,
    p_model varchar,
    p_model_info jsonb,
    p_now timestamptz,
    p_alive_since timestamptz,
    p_stream_cap integer,
    p_jti varchar,
    p_issued_at double precision,
    p_fingerprint varchar,
    p_fingerprint_inner bytea,
    p_fingerprint_outer bytea,
    p_context_max_messages integer
) RETURNS TABLE (
    outcome text, user_message_id bigint, assistant_message_id bigint, earlier_turn_in_flight boolean,
    recent_messages jsonb
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_active boolean;
    v_password varchar;
    v_valid_after timestamptz;
    v_valid_after_text text := '';
    v_user_message_id bigint;
    v_assistant_message_id bigint;
    v_in_flight boolean;
    v_now timestamptz := p_now;
BEGIN
    IF p_stream_cap > 0 THEN
        -- One turn start per user at a time, so two can't both squeeze under the cap.
        SELECT is_active, password, tokens_valid_after INTO v_active, v_password, v_valid_after
        FROM accounts_user WHERE id = p_user_id FOR UPDATE;
    ELSE
        SELECT is_active, password, tokens_valid_after INTO v_active, v_password, v_valid_after
        FROM accounts_user WHERE id = p_user_id;
    END IF;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'user_not_found', NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb;
        RETURN;
    END IF;
    IF v_valid_after IS NOT NULL THEN  -- as Python's datetime.isoformat() in UTC
        v_valid_after_text := to_char(v_valid_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
            || CASE WHEN extract(microseconds FROM v_valid_after)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(v_valid_after AT TIME ZONE 'UTC', '.US') END
            || '+00:00';
    END IF;
    IF EXISTS (SELECT 1 FROM accounts_revokedtoken r WHERE r.jti = p_jti AND r.user_id = p_user_id)
        OR NOT v_active
        OR (p_fingerprint IS NOT NULL AND p_fingerprint IS DISTINCT FROM left(encode(sha256(
            p_fingerprint_outer || sha256(p_fingerprint_inner
                || convert_to(v_password || '|' || v_valid_after_text, 'UTF8'))
        ), 'hex'), 24))
        OR (v_valid_after IS NOT NULL AND (
            p_issued_at IS NULL OR p_issued_at < floor(extract(epoch FROM v_valid_after))
        ))
    THEN
        RETURN QUERY SELECT 'token_rejected', NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb;
        RETURN;
    END IF;
    IF p_stream_cap > 0 AND (
        SELECT count(*) FROM conversations_message m
        JOIN conversations_conversation c ON c.id = m.conversation_id
        WHERE m.status = 'streaming' AND m.updated_at >= p_alive_since AND c.user_id = p_user_id
          AND (p_new OR m.conversation_id <> p_conversation_id)
    ) >= p_stream_cap THEN
        RETURN QUERY SELECT 'too_many_streams', NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb;
        RETURN;
    END IF;
    IF p_new THEN
        INSERT INTO conversations_conversation
            (id, user_id, title, created_at, updated_at, sentiment_state, status, provider, model)
        VALUES (p_conversation_id, p_user_id, p_title, p_now, p_now, NULL, 'streaming', p_provider, p_model);
    ELSE
        UPDATE conversations_conversation c
        SET updated_at = p_now, status = 'streaming', provider = p_provider, model = p_model,
            title = CASE
                WHEN c.title IS NULL
                    AND NOT EXISTS (SELECT 1 FROM conversations_message m WHERE m.conversation_id = c.id)
                THEN p_title ELSE c.title END
        WHERE c.id = p_conversation_id AND c.user_id = p_user_id;
        IF NOT FOUND THEN  -- unknown, someone else's, or deleted a moment ago
            RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::bigint, NULL::boolean, NULL::jsonb;
            RETURN;
        END IF;
        -- The conversation is locked: its messages so far are all stored, and this turn's
        -- come after them, also when a turn that locked it first took a later p_now.
        SELECT greatest(p_now, max(m.created_at)) INTO v_now
        FROM conversations_message m WHERE m.conversation_id = p_conversation_id;
        IF v_now > p_now THEN  -- and the conversation is as recent as its latest message
            UPDATE conversations_conversation SET updated_at = v_now WHERE id = p_conversation_id;
        END IF;
    END IF;
    INSERT INTO conversations_message (
        conversation_id, role, content, status, sentiment_data, model_info,
        prompt_tokens, completion_tokens, created_at, updated_at
    ) VALUES (p_conversation_id, 'user', p_text, 'complete', NULL, NULL, NULL, NULL, v_now, v_now)
    RETURNING id INTO v_user_message_id;
    INSERT INTO conversations_message (
        conversation_id, role, content, status, sentiment_data, model_info,
        prompt_tokens, completion_tokens, created_at, updated_at
    ) VALUES (p_conversation_id, 'assistant', '', 'streaming', NULL, p_model_info, NULL, NULL, v_now, v_now)
    RETURNING id INTO v_assistant_message_id;
    v_in_flight := NOT p_new AND EXISTS (
        SELECT 1 FROM conversations_message m
        WHERE m.conversation_id = p_conversation_id AND m.status = 'streaming'
          AND m.updated_at >= p_alive_since AND m.id < v_user_message_id
    );
    -- conversations.selectors.conversation_recent_messages, read after the in-flight check as
    -- the ORM reads it (a reply no longer in flight is stored by then).
    RETURN QUERY SELECT 'started', v_user_message_id, v_assistant_message_id, v_in_flight,
        CASE WHEN p_new OR v_in_flight THEN '[]'::jsonb ELSE (
            SELECT coalesce(jsonb_agg(jsonb_build_array(h.role, h.content) ORDER BY h.created_at DESC, h.id DESC),
                '[]'::jsonb)
            FROM (
                SELECT m.role, m.content, m.created_at, m.id FROM conversations_message m
                WHERE m.conversation_id = p_conversation_id AND m.id < v_user_message_id AND m.content <> ''
                ORDER BY m.created_at DESC, m.id DESC LIMIT p_context_max_messages
            ) h
        ) END;
END
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0006_turn_start_checks_the_token"),
    ]

    operations = [
        RunSQLOnPostgreSQL(TURN_START, PREVIOUS.TURN_START),
    ]

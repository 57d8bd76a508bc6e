# The chat turn's write-ahead as one PostgreSQL function (conversations.services.turn_start):
# one round trip instead of six to nine before the first byte of every reply.

from django.db import migrations

from conversations.migrations._operations import RunSQLOnPostgreSQL

# What conversations.services._write_ahead does with the ORM (and still does on SQLite), in one
# statement. Each statement of a VOLATILE function reads a fresh snapshot under READ COMMITTED,
# so the stream count after the user's row lock sees every turn committed before it, as the
# ORM's separate statements do. A change to the tables it writes needs a new migration that
# replaces it (test_turn_start_function compares the two paths row by row).
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
    p_stream_cap integer
) RETURNS TABLE (
    outcome text, user_message_id bigint, assistant_message_id bigint, earlier_turn_in_flight boolean
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_user_message_id bigint;
    v_assistant_message_id bigint;
BEGIN
    IF p_stream_cap > 0 THEN
        -- One turn start per user at a time, so two can't both squeeze under the cap.
        PERFORM 1 FROM accounts_user WHERE id = p_user_id FOR UPDATE;
        IF (
            SELECT count(*) FROM conversations_message m
            JOIN conversations_conversation c ON c.id = m.conversation_id
            WHERE m.status = 'streaming' AND m.updated_at >= p_alive_since AND c.user_id = p_user_id
              AND (p_new OR m.conversation_id <> p_conversation_id)
        ) >= p_stream_cap THEN
            RETURN QUERY SELECT 'too_many_streams', NULL::bigint, NULL::bigint, NULL::boolean;
            RETURN;
        END IF;
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
            RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::bigint, NULL::boolean;
            RETURN;
        END IF;
    END IF;
    INSERT INTO conversations_message (
        conversation_id, role, content, status, sentiment_data, model_info,
        prompt_tokens, completion_tokens, created_at, updated_at
    ) VALUES (p_conversation_id, 'user', p_text, 'complete', NULL, NULL, NULL, NULL, p_now, p_now)
    RETURNING id INTO v_user_message_id;
    INSERT INTO conversations_message (
        conversation_id, role, content, status, sentiment_data, model_info,
        prompt_tokens, completion_tokens, created_at, updated_at
    ) VALUES (p_conversation_id, 'assistant', '', 'streaming', NULL, p_model_info, NULL, NULL, p_now, p_now)
    RETURNING id INTO v_assistant_message_id;
    RETURN QUERY SELECT 'started', v_user_message_id, v_assistant_message_id,
        NOT p_new AND EXISTS (
            SELECT 1 FROM conversations_message m
            WHERE m.conversation_id = p_conversation_id AND m.status = 'streaming'
              AND m.updated_at >= p_alive_since AND m.id < v_user_message_id
        );
END
$$;
"""

DROP_TURN_START = """
DROP FUNCTION IF EXISTS conversations_turn_start(
    bigint, uuid, boolean, varchar, text, varchar, varchar, jsonb, timestamptz, timestamptz, integer
);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0004_conversation_index_in_history_order'),
    ]

    operations = [
        RunSQLOnPostgreSQL(TURN_START, DROP_TURN_START),
    ]

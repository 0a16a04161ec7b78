from sessionstore import SessionStore


def test_append_and_read_back(store: SessionStore) -> None:
    session = store.sessions.create("gpt-4o", model_name="GPT-4o")
    first = store.messages.append(session.session_id, "user", "Hello routers", tokens=3)
    second = store.messages.append(session.session_id, "assistant", "Hi", duration=0.25)
    assert (first.sequence_number, second.sequence_number) == (1, 2)
    stored = store.sessions.get(session.session_id)
    assert stored.message_count == 2
    assert stored.total_tokens == 3
    assert stored.title == "Hello routers"
    assert [m.content for m in store.messages.recent(session.session_id, 10)] == [
        "Hello routers",
        "Hi",
    ]
    report = store.health.check()
    assert report.ok, report.failed
